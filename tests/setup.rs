//! The build and setup contract: the binary finds libtorch through its runpath and links the CUDA
//! library when the install has it; the setup script names the step that fails and resumes.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn binary_has_a_libtorch_runpath_and_links_cuda_when_available() {
    let out = Command::new("readelf")
        .arg("-d")
        .arg(env!("CARGO_BIN_EXE_contrario"))
        .output()
        .expect("readelf (binutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    let torch_lib =
        std::fs::canonicalize(root().join(".libtorch/lib")).expect("run scripts/setup.sh first");
    assert!(
        text.lines()
            .any(|l| (l.contains("RUNPATH") || l.contains("RPATH"))
                && l.contains(&*torch_lib.to_string_lossy())),
        "no runpath to {}:\n{text}",
        torch_lib.display()
    );
    assert!(text.contains("[libtorch_cpu.so]"));
    if torch_lib.join("libtorch_cuda.so").exists() {
        assert!(
            text.contains("[libtorch_cuda.so]"),
            "libtorch_cuda.so is not NEEDED: the GPU would never be used"
        );
    }
    // And it runs with no LD_LIBRARY_PATH.
    let run = Command::new(env!("CARGO_BIN_EXE_contrario"))
        .arg("info")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn setup_names_the_failing_step_and_resumes() {
    let cache = tempfile::tempdir().unwrap();
    // An unreachable package index stands in for a registry outage.
    let run = |cache: &Path| {
        Command::new("bash")
            .arg(root().join("scripts/setup.sh"))
            .env("CONTRARIO_CACHE", cache)
            .env("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
            .env("PIP_RETRIES", "0")
            .env("PIP_TIMEOUT", "2")
            .env("PIP_NO_CACHE_DIR", "1")
            .output()
            .unwrap()
    };
    let first = run(cache.path());
    let err = String::from_utf8_lossy(&first.stderr);
    assert_eq!(first.status.code(), Some(1), "{err}");
    assert!(
        err.contains("setup FAILED at step \"PyPI packages\""),
        "{err}"
    );
    assert!(err.contains("run the same command again"), "{err}");
    // The environment made by the first run is reused by the second.
    let out = String::from_utf8_lossy(&first.stdout).to_string();
    assert!(out.contains("[setup 2/4]"), "{out}");
    let venv_python = cache.path().join("torch-2.13.0/bin/python");
    assert!(venv_python.exists());
    let made = std::fs::symlink_metadata(&venv_python)
        .unwrap()
        .modified()
        .unwrap();
    let second = run(cache.path());
    assert_eq!(second.status.code(), Some(1));
    assert_eq!(
        std::fs::symlink_metadata(&venv_python)
            .unwrap()
            .modified()
            .unwrap(),
        made,
        "venv was recreated"
    );
}
