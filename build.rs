//! Bake libtorch's location into the binary: an rpath so `target/*/contrario` finds
//! `libtorch_cpu.so` without LD_LIBRARY_PATH, a forced link of `libtorch_cuda.so` when the
//! install has it (the linker's --as-needed would drop it and CUDA would never be used), and the
//! PyTorch version and site-packages folder for the status bar and the built-in weights. With
//! CONTRARIO_PACKAGE=1 (`make package`) the rpath is `$ORIGIN/lib` and nothing of this machine's
//! paths is baked in.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-env-changed=CONTRARIO_PACKAGE");
    println!("cargo:rerun-if-changed=build.rs");
    // `make package`: the binary finds libtorch in `lib/` beside itself, links only its CPU part
    // (CUDA is loaded at run time where the libraries are added), and names no path of this
    // machine.
    let package = std::env::var_os("CONTRARIO_PACKAGE").is_some_and(|v| v == "1");
    println!("cargo::rustc-check-cfg=cfg(contrario_package)");
    if package {
        println!("cargo:rustc-cfg=contrario_package");
    }
    let Some(libtorch) = std::env::var_os("LIBTORCH") else {
        println!("cargo:warning=LIBTORCH is not set: run scripts/setup.sh (make setup) first");
        return;
    };
    // Resolve the `.libtorch` symlink so the rpath names the real install.
    let torch = std::fs::canonicalize(PathBuf::from(&libtorch)).unwrap_or(PathBuf::from(libtorch));
    let lib = torch.join("lib");
    println!("cargo:rerun-if-changed={}", lib.display());
    if package {
        println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/lib");
    } else {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
    if !package && lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-search=native={}", lib.display());
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
        println!("cargo:rustc-link-arg=-ltorch_cuda");
        println!("cargo:rustc-link-arg=-Wl,--as-needed");
    }
    let version = std::fs::read_to_string(torch.join("version.py"))
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.strip_prefix("__version__ = ")
                    .map(|v| v.trim_matches(['\'', '"']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=CONTRARIO_LIBTORCH_VERSION={version}");
    if let Some(site) = torch.parent().filter(|_| !package) {
        println!("cargo:rustc-env=CONTRARIO_SITE_PACKAGES={}", site.display());
    }
}
