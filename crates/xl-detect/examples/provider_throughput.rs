//! Images a second the default person model (SSD-MobileNet-v2) reaches alone on one execution
//! provider, at several batch sizes and worker counts: the figure for sizing a GPU box, where
//! `xueliang bench` (which also decodes video) cannot run.
//!
//! ```sh
//! cargo run --release -p xl-detect --example provider_throughput -- cuda 1,8,32 1,2 5
//! ```
//! Arguments: provider (cpu, cuda, tensorrt, openvino), batch sizes, worker counts, seconds per
//! figure; `tf32` after them turns TensorFloat-32 on (cuda). ONNX Runtime comes from
//! `ORT_DYLIB_PATH`, the models from `XUELIANG_MODELS`.

use std::time::Duration;

use xl_detect::ceiling::person_images_per_second;
use xl_detect::models::PersonModelConfig;
use xl_detect::runtime::{self, Provider, SessionOptions};

fn list(arg: Option<String>, default: &str) -> Vec<usize> {
    arg.as_deref()
        .unwrap_or(default)
        .split(',')
        .map(|n| n.parse().unwrap_or_else(|_| panic!("not a number: {n}")))
        .collect()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "cpu".into());
    let provider: Provider = serde_json::from_value(serde_json::Value::String(name.clone()))
        .unwrap_or_else(|e| panic!("provider {name}: {e}"));
    let batches = list(args.next(), "1,8");
    let workers = list(args.next(), "1");
    let seconds: f64 = args.next().map_or(5.0, |s| s.parse().expect("seconds"));
    let tf32 = args.next().as_deref() == Some("tf32");
    let library = runtime::default_library();
    let cfg = PersonModelConfig::ssd(&xl_detect::models_dir());
    let opts = SessionOptions {
        provider,
        tf32,
        ..SessionOptions::default()
    };
    println!(
        "person model {}, provider {name}, tf32 {tf32}",
        cfg.path.display()
    );
    for &w in &workers {
        for &b in &batches {
            match person_images_per_second(
                &library,
                &cfg,
                &opts,
                w,
                b,
                Duration::from_secs_f64(seconds),
            ) {
                Ok(ips) => println!("  workers {w:>2}  batch {b:>3}  {ips:>9.1} images/s"),
                Err(e) => {
                    eprintln!("  workers {w} batch {b}: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
}
