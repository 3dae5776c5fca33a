//! `xueliang gate-decode --firmware NAME FILE`: runs one firmware adapter on a payload file and
//! prints the canonical gate events as JSON lines (each with its `kind`). What the hub would
//! store, without a broker or a device.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use xl_core::gate::PayloadMeta;

/// What the transport would know besides the bytes.
#[derive(Debug, Default)]
pub struct DecodeMeta {
    /// The MQTT topic (some adapters read the device from it).
    pub topic: Option<String>,
    /// The HTTP `Content-Type` (multipart bodies need its boundary).
    pub content_type: Option<String>,
    /// The HTTP path, e.g. `/iclock/cdata`.
    pub path: Option<String>,
    /// The HTTP query, e.g. `SN=CJDE193560303&table=ATTLOG`.
    pub query: Option<String>,
}

/// Decodes `file` with `firmware` and writes one JSON line per event to `out`. Generic
/// dialects come from `config` (`[[gate_ingest.generic]]`). Errors name the file and why.
pub fn run(
    firmware: &str,
    file: &Path,
    meta: &DecodeMeta,
    config: Option<&Path>,
    out: &mut dyn Write,
) -> anyhow::Result<usize> {
    let generic = match config {
        Some(c) => crate::config::Config::load(c)?.gate_ingest.generic,
        None => Vec::new(),
    };
    let adapters = xl_gates::adapters::Adapters::new(&generic).map_err(anyhow::Error::msg)?;
    let Some(adapter) = adapters.get(firmware) else {
        let mut names: Vec<String> = xl_gates::adapters::BUILT_IN
            .iter()
            .map(|s| (*s).to_owned())
            .chain(generic.iter().map(|g| g.name.clone()))
            .collect();
        names.sort();
        bail!(
            "unknown firmware {firmware:?}: expected one of {} (generic dialects need --config)",
            names.join(", ")
        );
    };
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut m = PayloadMeta::new(jiff::Timestamp::now());
    if let Some(t) = &meta.topic {
        m = m.with_topic(t);
    }
    if let Some(c) = &meta.content_type {
        m = m.with_content_type(c);
    }
    if let Some(p) = &meta.path {
        m = m.with_path(p);
    }
    if let Some(q) = &meta.query {
        m = m.with_query(q);
    }
    let events = adapter
        .decode(&m, &bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    for e in &events {
        serde_json::to_writer(&mut *out, e)?;
        out.write_all(b"\n")?;
    }
    Ok(events.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../firmware-adapters")
            .join(name)
    }

    #[test]
    fn prints_one_json_line_per_event_with_its_kind() {
        let mut out = Vec::new();
        let n = run(
            "hikvision-isapi",
            &fixture("hikvision-isapi/testdata/hikvision_ds-k1t_face-pass_http-push.json"),
            &DecodeMeta::default(),
            None,
            &mut out,
        )
        .unwrap();
        assert_eq!(n, 1);
        let text = String::from_utf8(out).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(line["kind"], "access_granted");
        assert_eq!(line["event_id"], "1199");
    }

    #[test]
    fn bad_input_says_why() {
        let dir = std::env::temp_dir().join(format!("xl-gate-decode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.json");
        std::fs::write(&junk, b"{\"AccessControllerEvent\": // hi\n}").unwrap();
        let e = run(
            "hikvision-isapi",
            &junk,
            &DecodeMeta::default(),
            None,
            &mut Vec::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("junk.json") && e.contains("comments"), "{e}");
        let e = run(
            "hikvison",
            &junk,
            &DecodeMeta::default(),
            None,
            &mut Vec::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("hikvision-isapi"), "{e}");
        let e = run(
            "dahua",
            &dir.join("missing"),
            &DecodeMeta::default(),
            None,
            &mut Vec::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cannot read"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
