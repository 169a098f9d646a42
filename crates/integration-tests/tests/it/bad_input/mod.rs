//! Malformed and hostile input: clear errors or closed connections, never a crash, and nothing
//! lost for the well-behaved clients beside it.

mod hostile_input;
mod requests;
