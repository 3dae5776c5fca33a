//! Shared by xl-record's integration tests: the FFmpeg command-line tools they check files with.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// What `ffmpeg -v error` says decoding every frame of a file: nothing for a good one.
pub fn decode_complaints(path: &Path) -> anyhow::Result<String> {
    let out = run_tool(
        "ffmpeg",
        &[
            "-nostdin",
            "-v",
            "error",
            "-i",
            path_str(path)?,
            "-f",
            "null",
            "-",
        ],
    )?;
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

pub fn run_tool(tool: &str, args: &[&str]) -> anyhow::Result<std::process::Output> {
    let out = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| {
            format!("cannot run `{tool}`: these tests need the FFmpeg CLIs (scripts/setup)")
        })?;
    if !out.status.success() {
        bail!(
            "{tool} {} failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

pub fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not UTF-8", path.display()))
}
