//! The `cauce` command-line binary run as a real process against a real broker: topic and
//! cluster admin, produce and consume, groups, and perf.

mod admin;
mod data;
mod groups;
mod perf;
