//! ONNX Runtime: loading the library once, execution providers, sessions.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::ep;
use ort::session::Session;
use serde::Deserialize;

use crate::DetectError;

/// Where inference runs. `cpu` is what every install has; the others need an ONNX Runtime build
/// with that provider (the PyPI `onnxruntime-gpu` or `onnxruntime-openvino` wheels, or a TensorRT
/// build) and fail at start-up with ONNX Runtime's own reason when it is missing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Provider {
    #[default]
    Cpu,
    Cuda,
    Tensorrt,
    Openvino,
}

impl Provider {
    pub fn name(&self) -> &'static str {
        match self {
            Provider::Cpu => "cpu",
            Provider::Cuda => "cuda",
            Provider::Tensorrt => "tensorrt",
            Provider::Openvino => "openvino",
        }
    }
}

/// How one model session is built.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    pub provider: Provider,
    /// GPU index for cuda and tensorrt; OpenVINO device type (`CPU`, `GPU`, ...) is taken from
    /// `openvino_device`.
    pub device_id: i32,
    pub openvino_device: String,
    /// Intra-op threads of this session. Several sessions side by side each want 1.
    pub threads: usize,
    /// cuda only: TensorFloat-32 for convolutions and matrix products (Ampere and later).
    /// Off by default: with it, SFace embeddings moved by up to 2e-3 from the CPU's on an H200.
    pub tf32: bool,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            provider: Provider::Cpu,
            device_id: 0,
            openvino_device: "CPU".into(),
            threads: 1,
            tf32: false,
        }
    }
}

static ENV: OnceLock<Result<Environment, String>> = OnceLock::new();

/// The ONNX Runtime shared library: `ORT_DYLIB_PATH` if set, else the copy `scripts/setup-assets`
/// fetches into the cache.
pub fn default_library() -> PathBuf {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    crate::cache_dir().join("onnxruntime/1.31.1/libonnxruntime.so.1.31.1")
}

/// Loads ONNX Runtime from `library` (once per process; later calls return the first result,
/// whatever path they name).
pub fn init(library: &Path) -> Result<Environment, DetectError> {
    ENV.get_or_init(|| {
        if !library.is_file() {
            return Err(format!(
                "ONNX Runtime library {} not found (run scripts/setup-assets, or set ORT_DYLIB_PATH)",
                library.display()
            ));
        }
        let builder = ort::init_from(library)
            .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", library.display()))?;
        builder
            .with_name("xueliang")
            .with_telemetry(false)
            .build()
            .map_err(|e| format!("cannot start ONNX Runtime: {e}"))
    })
    .clone()
    .map_err(DetectError::Runtime)
}

/// Opens the model at `path` on the configured provider.
pub fn open(env: &Environment, path: &Path, opts: &SessionOptions) -> Result<Session, DetectError> {
    if !path.is_file() {
        return Err(DetectError::Model {
            path: path.to_owned(),
            reason: "no such file (run scripts/setup-assets, or set XUELIANG_MODELS)".into(),
        });
    }
    let fail = |what: &str, e: &dyn std::fmt::Display| DetectError::Model {
        path: path.to_owned(),
        reason: format!("{what}: {e}"),
    };
    let mut b = Session::builder(env).map_err(|e| fail("session options", &e))?;
    let dispatch = match opts.provider {
        Provider::Cpu => None,
        Provider::Cuda => Some(
            ep::CUDA::default()
                .with_device_id(opts.device_id)
                .with_tf32(opts.tf32)
                .build(),
        ),
        Provider::Tensorrt => Some(
            ep::TensorRT::default()
                .with_device_id(opts.device_id)
                .build(),
        ),
        Provider::Openvino => Some(
            ep::OpenVINO::default()
                .with_device_type(&opts.openvino_device)
                .build(),
        ),
    };
    if let Some(d) = dispatch {
        b = b
            .with_execution_providers([d.error_on_failure()])
            .map_err(|e| DetectError::Provider {
                provider: opts.provider.name(),
                reason: e.to_string(),
            })?;
    }
    // One thread per session by default; spinning off so sessions sharing cores do not steal
    // each other's time (11.1 -> 14.5 frames/s in the Python reference when it was set).
    b = b
        .with_intra_threads(opts.threads.max(1))
        .map_err(|e| fail("session options", &e))?;
    b = b
        .with_inter_threads(1)
        .map_err(|e| fail("session options", &e))?;
    b = b
        .with_intra_op_spinning(false)
        .map_err(|e| fail("session options", &e))?;
    b.commit_from_file(path)
        .map_err(|e| fail("cannot load", &e))
}
