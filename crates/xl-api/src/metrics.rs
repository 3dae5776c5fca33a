//! `/metrics` in the Prometheus text format, rendered from the live figures (no global
//! recorder: the registry is the source of truth). Camera ids are restricted to
//! `[A-Za-z0-9_.-]`, so they need no escaping in label values.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use xl_core::camera::{CameraStats, DropReason};

use crate::ApiState;

pub(crate) async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        render(&state),
    )
}

type Get = fn(&CameraStats) -> u64;

const COUNTERS: [(&str, &str, Get); 5] = [
    (
        "xueliang_camera_frames_in_total",
        "Encoded frames received.",
        |s| s.frames_in.load(Relaxed),
    ),
    (
        "xueliang_camera_bytes_in_total",
        "Encoded bytes received.",
        |s| s.bytes_in.load(Relaxed),
    ),
    (
        "xueliang_camera_frames_decoded_total",
        "Frames decoded at the analysis size.",
        |s| s.frames_decoded.load(Relaxed),
    ),
    (
        "xueliang_camera_rtp_packets_lost_total",
        "RTP packets lost (sequence gaps).",
        |s| s.rtp_packets_lost.load(Relaxed),
    ),
    (
        "xueliang_camera_reconnects_total",
        "Connection attempts after the first.",
        |s| s.reconnects.load(Relaxed),
    ),
];

const STATUSES: [&str; 3] = ["connecting", "online", "offline"];

pub(crate) fn render(state: &ApiState) -> String {
    let cameras = state.cameras.snapshot();
    let mut out = String::with_capacity(512 + cameras.len() * 1536);
    for (name, help, get) in COUNTERS {
        family(&mut out, name, help, "counter");
        for (info, stats) in &cameras {
            let _ = writeln!(out, "{name}{{camera=\"{}\"}} {}", info.id, get(stats));
        }
    }
    let name = "xueliang_camera_frames_dropped_total";
    family(&mut out, name, "Frames not decoded, by reason.", "counter");
    for (info, stats) in &cameras {
        for r in DropReason::ALL {
            let (id, reason, n) = (&info.id, r.as_str(), stats.dropped(r));
            let _ = writeln!(out, "{name}{{camera=\"{id}\",reason=\"{reason}\"}} {n}");
        }
    }
    let name = "xueliang_camera_status";
    family(
        &mut out,
        name,
        "1 for the camera's current status, else 0.",
        "gauge",
    );
    let mut totals = [0usize; 3];
    for (info, stats) in &cameras {
        let now = stats.status();
        for (i, label) in STATUSES.into_iter().enumerate() {
            let on = now.label() == label;
            totals[i] += usize::from(on);
            let (id, v) = (&info.id, u8::from(on));
            let _ = writeln!(out, "{name}{{camera=\"{id}\",status=\"{label}\"}} {v}");
        }
    }
    family(&mut out, "xueliang_cameras", "Cameras by status.", "gauge");
    for (label, n) in STATUSES.into_iter().zip(totals) {
        let _ = writeln!(out, "xueliang_cameras{{status=\"{label}\"}} {n}");
    }
    crate::gates::render_metrics(&mut out, state);
    for source in &state.extra_metrics {
        source.render_prometheus(&mut out);
    }
    out
}

fn family(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}
