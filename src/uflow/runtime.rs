//! What libtorch this build runs on and which device the worker computes on.

use serde::Serialize;

/// PyTorch version of the libtorch this binary was linked against (read by build.rs).
pub const LIBTORCH_VERSION: &str = match option_env!("CONTRARIO_LIBTORCH_VERSION") {
    Some(v) => v,
    None => "unknown",
};

/// A folder holding libtorch's CUDA part (`libtorch_cuda.so` and what it needs), for a binary
/// linked with libtorch's CPU part only (the installed package): `CONTRARIO_CUDA_LIB`, else
/// `cuda/torch-lib` beside the executable, where `add-cuda` puts PyPI's CUDA build.
fn cuda_library_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("CONTRARIO_CUDA_LIB")
        .map(std::path::PathBuf::from)
        .or_else(|| Some(crate::project::install_dir()?.join("cuda/torch-lib")))
        .filter(|d| d.join("libtorch_cuda.so").exists())
}

/// Load libtorch's CUDA part into the process once, where it was added to a CPU-only binary:
/// loaded globally, its kernels register with libtorch as when it is linked. The folder loaded,
/// or why not; None when there is nothing to load.
fn load_cuda() -> Option<Result<String, String>> {
    static LOADED: std::sync::OnceLock<Option<Result<String, String>>> = std::sync::OnceLock::new();
    LOADED
        .get_or_init(|| {
            let dir = cuda_library_dir()?;
            let lib = dir.join("libtorch_cuda.so");
            use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
            // SAFETY: libtorch's own CUDA library, of the same version as the libtorch linked
            // (add-cuda installs that version); it is kept loaded for the life of the process.
            match unsafe { Library::open(Some(&lib), RTLD_NOW | RTLD_GLOBAL) } {
                Ok(l) => {
                    std::mem::forget(l);
                    Some(Ok(dir.display().to_string()))
                }
                Err(e) => Some(Err(format!("{}: {e}", lib.display()))),
            }
        })
        .clone()
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TorchInfo {
    /// The CUDA libraries loaded at run time (a package with CUDA added), or why they could not
    /// be; None when the binary has none to load (linked with them, or CPU only).
    pub cuda_libraries: Option<Result<String, String>>,
    pub libtorch_version: String,
    /// "cuda:0" when a GPU is usable, else "cpu".
    pub device: String,
    pub cuda_devices: i64,
    pub cudnn: bool,
    pub cpu_threads: i32,
}

impl TorchInfo {
    /// The status bar's text.
    pub fn summary(&self) -> String {
        let dev = if self.on_gpu() {
            format!("GPU {} ({} CUDA device(s))", self.device, self.cuda_devices)
        } else if self.cuda_devices > 0 {
            "CPU (GPU not used)".to_string()
        } else {
            match &self.cuda_libraries {
                Some(Ok(_)) => "CPU (CUDA libraries loaded, no GPU)".to_string(),
                Some(Err(_)) => "CPU (the CUDA libraries did not load)".to_string(),
                None => "CPU".to_string(),
            }
        };
        format!(
            "{dev} · {} CPU threads · libtorch {}",
            self.cpu_threads, self.libtorch_version
        )
    }

    /// The worker computes on the GPU.
    pub fn on_gpu(&self) -> bool {
        self.device.starts_with("cuda")
    }

    pub fn tch_device(&self) -> tch::Device {
        if self.on_gpu() {
            tch::Device::Cuda(0)
        } else {
            tch::Device::Cpu
        }
    }
}

/// Query libtorch. Call it on the worker thread: the first call loads the CUDA libraries.
pub fn probe() -> TorchInfo {
    probe_with(false)
}

/// [`probe`], with the device the worker uses: the CPU when `cpu_only`, else the GPU if usable.
pub fn probe_with(cpu_only: bool) -> TorchInfo {
    let cuda_libraries = load_cuda();
    let cuda_devices = if tch::Cuda::is_available() {
        tch::Cuda::device_count()
    } else {
        0
    };
    TorchInfo {
        cuda_libraries,
        libtorch_version: LIBTORCH_VERSION.to_string(),
        device: if cuda_devices > 0 && !cpu_only {
            "cuda:0".into()
        } else {
            "cpu".into()
        },
        cuda_devices,
        cudnn: tch::Cuda::cudnn_is_available(),
        cpu_threads: tch::get_num_threads(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn libtorch_is_the_pinned_version_and_computes() {
        assert!(
            super::LIBTORCH_VERSION.starts_with("2.13.0"),
            "{}",
            super::LIBTORCH_VERSION
        );
        let info = super::probe();
        let t = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]).to_device(info.tch_device());
        assert_eq!((&t * &t).sum(tch::Kind::Float).double_value(&[]), 14.0);
        assert!(info.summary().contains("libtorch 2.13.0"));
        assert!(info.summary().contains("CPU threads"));
        let cpu = super::probe_with(true);
        assert_eq!(
            (cpu.device.as_str(), cpu.tch_device()),
            ("cpu", tch::Device::Cpu)
        );
        assert!(!cpu.on_gpu());
    }
}
