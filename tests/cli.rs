//! The binary's subcommands, run as a user would.

use std::process::Command;

fn contrario() -> Command {
    Command::new(env!("CARGO_BIN_EXE_contrario"))
}

#[test]
fn info_reports_libtorch_and_the_builtin_backbone() {
    let out = contrario().args(["info", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["torch"]["libtorch_version"]
            .as_str()
            .unwrap()
            .starts_with("2.13.0")
    );
    assert_eq!(v["builtin_backbone"]["tensors"], 296);
}

#[test]
fn demo_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("project.ron"), "x").unwrap();
    let out = contrario()
        .args(["demo", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
}

#[test]
fn unknown_subcommand_exits_non_zero() {
    let out = contrario().arg("frobnicate").output().unwrap();
    assert!(!out.status.success());
}
