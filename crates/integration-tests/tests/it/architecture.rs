//! The dependency rules of `docs/ARCHITECTURE.md`, checked against `cargo metadata`: which
//! workspace crate may depend on which, and where the dependencies that must stay inside one
//! crate are used.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Every workspace crate and the workspace crates it may depend on (any kind of dependency).
/// A crate missing here fails the test, so that a new crate comes with its rule.
const ALLOWED_WORKSPACE_DEPENDENCIES: &[(&str, &[&str])] = &[
    ("cauce-protocol", &[]),
    ("cauce-client", &["cauce-protocol"]),
    ("cauce-log", &["cauce-protocol"]),
    ("cauce-metadata", &["cauce-protocol", "cauce-log"]),
    (
        "cauce-broker",
        &[
            "cauce-protocol",
            "cauce-client",
            "cauce-log",
            "cauce-metadata",
        ],
    ),
    (
        "cauce",
        &[
            "cauce-protocol",
            "cauce-client",
            "cauce-log",
            "cauce-metadata",
            "cauce-broker",
        ],
    ),
    // The tests are clients of real processes: they speak the protocol, never link the broker.
    (
        "cauce-integration-tests",
        &["cauce-protocol", "cauce-client"],
    ),
    // Streams and Connect are libraries a user runs without the broker's code.
    ("cauce-streams", &["cauce-protocol", "cauce-client"]),
    (
        "cauce-connect",
        &["cauce-protocol", "cauce-client", "cauce-streams"],
    ),
];

/// External crates that must stay inside the listed workspace crates.
const CONFINED_DEPENDENCIES: &[(&str, &[&str])] = &[
    // The controller quorum's consensus is an implementation detail of the metadata crate.
    ("openraft", &["cauce-metadata"]),
    // librdkafka is a client for the binary's data commands and for tests, never a library's.
    ("rdkafka", &["cauce", "cauce-integration-tests"]),
];

/// Each workspace package with the names of its direct dependencies.
fn workspace_dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let output = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|package| {
            let name = package["name"].as_str().expect("name").to_string();
            let dependencies = package["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .map(|dependency| dependency["name"].as_str().expect("name").to_string())
                .collect();
            (name, dependencies)
        })
        .collect()
}

#[test]
fn workspace_crates_depend_only_downwards() {
    let rules: BTreeMap<&str, &[&str]> = ALLOWED_WORKSPACE_DEPENDENCIES.iter().copied().collect();
    let packages = workspace_dependencies();
    let mut broken = Vec::new();
    for (package, dependencies) in &packages {
        let Some(allowed) = rules.get(package.as_str()) else {
            broken.push(format!(
                "{package} has no rule in ALLOWED_WORKSPACE_DEPENDENCIES"
            ));
            continue;
        };
        for dependency in dependencies {
            let is_workspace_crate =
                packages.contains_key(dependency) || rules.contains_key(dependency.as_str());
            if is_workspace_crate && !allowed.contains(&dependency.as_str()) {
                broken.push(format!("{package} must not depend on {dependency}"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "dependency rules broken:\n{}",
        broken.join("\n")
    );
}

#[test]
fn confined_dependencies_stay_in_their_crates() {
    let packages = workspace_dependencies();
    let mut broken = Vec::new();
    for (dependency, allowed) in CONFINED_DEPENDENCIES {
        for (package, dependencies) in &packages {
            if dependencies.contains(*dependency) && !allowed.contains(&package.as_str()) {
                broken.push(format!("{package} must not depend on {dependency}"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "dependency rules broken:\n{}",
        broken.join("\n")
    );
}
