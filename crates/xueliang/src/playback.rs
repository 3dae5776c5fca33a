//! What the API's playback, clip and export routes ask of the hub: recorded ranges, clips
//! assembled from segments, and signed evidence packages.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use sha2::Digest;
use tracing::{info, warn};
use xl_api::ApiError;
use xl_api::backend::{
    AlertQuery, AlertView, EvidenceKey, ExportFile, ExportSubject, OnBehalf, Recorded, Span,
    VideoBody,
};
use xl_core::live::StreamKind;
use xl_core::{AlertId, CameraId, ErrorKind};
use xl_record::{Clip, RecordError};
use xl_store::{NewHold, Store};

use crate::recording::{ClipError, Recordings, minus, plus};

/// The clip window of an alert whose hold is gone (older than recording, or ended and
/// deleted): the rules' defaults.
const DEFAULT_CLIP_PRE: SignedDuration = SignedDuration::from_secs(10);
const DEFAULT_CLIP_POST: SignedDuration = SignedDuration::from_secs(20);
/// The most gate events and alerts an export lists.
const EXPORT_LIST_LIMIT: u32 = 1000;
/// How long an export being made holds its video at most (released when it is written).
const EXPORT_HOLD: SignedDuration = SignedDuration::from_hours(1);

/// A clip as the API's video body.
struct ClipBody(Clip);

impl VideoBody for ClipBody {
    fn len(&self) -> u64 {
        self.0.len()
    }

    fn start_at(&self) -> Timestamp {
        self.0.start_at()
    }

    fn end_at(&self) -> Timestamp {
        self.0.end_at()
    }

    fn read(&self, start: u64, end: u64) -> Result<Vec<u8>, ApiError> {
        let mut out = Vec::with_capacity(usize::try_from(end.saturating_sub(start)).unwrap_or(0));
        self.0
            .write_range(start, end, &mut out)
            .map_err(|e| ApiError::internal(format!("reading a clip: {e}")))?;
        Ok(out)
    }
}

fn span(r: &xl_store::TimeRange) -> Span {
    Span {
        from: r.start,
        to: r.end,
    }
}

fn api(e: xl_store::StoreError) -> ApiError {
    ApiError::new(e.kind(), e.to_string())
}

/// Recorded ranges of `camera`'s `stream` (default: the one it records) over `[from, to)`.
pub async fn recorded(
    store: &Store,
    recordings: &Recordings,
    camera: &CameraId,
    stream: Option<StreamKind>,
    from: Timestamp,
    to: Timestamp,
) -> Result<Recorded, ApiError> {
    let stream = stream.unwrap_or_else(|| recordings.recorded_stream(camera));
    let r = store
        .recorded_ranges(camera, stream, from, to, xl_store::RECORDING_GAP_SECS)
        .await
        .map_err(api)?;
    Ok(Recorded {
        camera: camera.clone(),
        stream,
        ranges: r.ranges.iter().map(span).collect(),
        gaps: r.gaps.iter().map(span).collect(),
    })
}

/// `camera`'s recording of `[from, to)` as one MP4, within `[recording] max_clip_minutes`.
pub async fn clip(
    store: &Store,
    recordings: &Recordings,
    camera: &CameraId,
    stream: Option<StreamKind>,
    from: Timestamp,
    to: Timestamp,
    on_behalf: &OnBehalf,
) -> Result<Arc<dyn VideoBody>, ApiError> {
    check_range(recordings, from, to)?;
    let stream = stream.unwrap_or_else(|| recordings.recorded_stream(camera));
    let clip = make_clip(store, recordings, camera, stream, from, to, on_behalf).await?;
    Ok(Arc::new(ClipBody(clip)))
}

fn check_range(recordings: &Recordings, from: Timestamp, to: Timestamp) -> Result<(), ApiError> {
    if to <= from {
        return Err(ApiError::invalid("`to` must be after `from`").with_field("to"));
    }
    let max = recordings.config().max_clip();
    if to.duration_since(from) > max {
        return Err(ApiError::invalid(format!(
            "the range is {} minutes; at most {} minutes are played, downloaded or exported at \
             once ([recording] max_clip_minutes)",
            to.duration_since(from).as_secs() / 60,
            max.as_secs() / 60
        ))
        .with_field("to"));
    }
    Ok(())
}

async fn make_clip(
    store: &Store,
    recordings: &Recordings,
    camera: &CameraId,
    stream: StreamKind,
    from: Timestamp,
    to: Timestamp,
    on_behalf: &OnBehalf,
) -> Result<Clip, ApiError> {
    match recordings.clip(camera, stream, from, to, on_behalf).await {
        Ok(c) => Ok(c),
        Err(ClipError::Record(RecordError::NoRecording { .. })) => {
            let r = store
                .recorded_ranges(camera, stream, from, to, xl_store::RECORDING_GAP_SECS)
                .await
                .map_err(api)?;
            Err(ApiError::not_found(format!(
                "camera {camera} has no {stream} stream recording between {from} and {to}"
            ))
            .with_gaps(r.gaps.iter().map(span).collect()))
        }
        Err(ClipError::Record(e @ RecordError::Io { .. })) if e.kind() == ErrorKind::NotFound => {
            // Deleted between the index's answer and the read (retention, the disk guard).
            Err(ApiError::not_found(format!(
                "a segment of camera {camera}'s recording between {from} and {to} is gone \
                 from the disk (deleted by retention or the disk guard); ask for a later range"
            )))
        }
        Err(ClipError::Peer(part)) => {
            use crate::peer_video::FetchError;
            let message = format!("camera {camera}'s recording: {part}");
            Err(match part.error {
                FetchError::Gone { .. } => ApiError::not_found(message),
                FetchError::Io(_) => ApiError::internal(message),
                // 502, which says what went wrong (a 503's words are withheld).
                FetchError::Unreachable { .. } | FetchError::Refused { .. } => {
                    ApiError::new(ErrorKind::Upstream, message)
                }
            })
        }
        Err(e) => Err(ApiError::internal(format!("clip of camera {camera}: {e}"))),
    }
}

/// The camera and range of an alert's clip: what its hold covers, else the default window.
async fn alert_range(
    store: &Store,
    alert: &xl_core::Alert,
) -> Result<Option<(CameraId, Timestamp, Timestamp)>, ApiError> {
    let Some(camera) = alert.camera.clone() else {
        return Ok(None);
    };
    let holder = xl_store::alert_holder(&alert.id);
    let held = store
        .holds_overlapping(&camera, alert.raised_at, alert.raised_at)
        .await
        .map_err(api)?
        .into_iter()
        .find(|h| h.holder == holder);
    let (from, to) = match held {
        Some(h) => (h.from, h.to),
        None => (
            minus(alert.raised_at, DEFAULT_CLIP_PRE),
            plus(alert.raised_at, DEFAULT_CLIP_POST),
        ),
    };
    Ok(Some((camera, from, to)))
}

/// An alert's clip.
pub async fn alert_clip(
    store: &Store,
    recordings: &Recordings,
    alert: &AlertId,
    on_behalf: &OnBehalf,
) -> Result<Arc<dyn VideoBody>, ApiError> {
    let a = store
        .alert(alert)
        .await
        .map_err(api)?
        .ok_or_else(|| ApiError::not_found(format!("no alert {alert}")))?
        .alert;
    let Some((camera, from, to)) = alert_range(store, &a).await? else {
        return Err(ApiError::not_found(format!(
            "alert {alert} has no camera, so it has no clip"
        )));
    };
    let stream = recordings.recorded_stream(&camera);
    let clip = make_clip(store, recordings, &camera, stream, from, to, on_behalf).await?;
    Ok(Arc::new(ClipBody(clip)))
}

/// The hub's evidence key, public half.
pub fn evidence_key(key: &xl_evidence::HubKey) -> EvidenceKey {
    EvidenceKey {
        algorithm: "ed25519".to_owned(),
        public_key: key.public_key_base64(),
        fingerprint: key.key_id(),
    }
}

/// What an export needs of the hub.
pub struct Exporter<'a> {
    pub backend: &'a crate::api_backend::StoreBackend,
    pub key: &'a Arc<xl_evidence::HubKey>,
    pub data_dir: &'a Path,
    /// The caller's credentials, for video recorded on other nodes.
    pub on_behalf: &'a OnBehalf,
}

impl Exporter<'_> {
    /// Makes the signed package of `subject` for `by` under `<data_dir>/exports/`.
    pub async fn export(&self, subject: ExportSubject, by: &str) -> Result<ExportFile, ApiError> {
        use xl_api::Backend;
        let b = self.backend;
        let now = b.alerts.clocks().realtime();
        let id = format!(
            "{}-{:08x}",
            now.strftime("%Y%m%dT%H%M%SZ"),
            rand::random::<u32>()
        );
        let dir = self.data_dir.join(crate::recording::EXPORTS_DIR);
        std::fs::create_dir_all(&dir)
            .map_err(|e| ApiError::internal(format!("creating {}: {e}", dir.display())))?;

        // What goes in: (camera, stream, from, to) of the video, the alert, its gate.
        let (video, view, about) = match &subject {
            ExportSubject::Alert(alert) => {
                let view = b
                    .alert(alert)
                    .await?
                    .ok_or_else(|| ApiError::not_found(format!("no alert {alert}")))?;
                let range = alert_range(&b.store, &view.alert).await?;
                let video = range.map(|(camera, from, to)| {
                    let stream = b.recordings.recorded_stream(&camera);
                    (camera, stream, from, to)
                });
                let about = json!({"alert": alert});
                (video, Some(view), about)
            }
            ExportSubject::Range {
                camera,
                stream,
                from,
                to,
            } => {
                check_range(&b.recordings, *from, *to)?;
                let stream = stream.unwrap_or_else(|| b.recordings.recorded_stream(camera));
                let about = json!({"camera": camera, "stream": stream, "from": from, "to": to});
                (Some((camera.clone(), stream, *from, *to)), None, about)
            }
        };

        // Held while it is made, so retention cannot take the video midway.
        let holder = format!("export:{id}");
        if let Some((camera, _, from, to)) = &video {
            b.store
                .add_hold(&NewHold {
                    camera: camera.clone(),
                    from: *from,
                    to: *to,
                    until: Some(plus(now, EXPORT_HOLD)),
                    reason: format!("evidence export {id} by {by}"),
                    holder: holder.clone(),
                    keep_after: SignedDuration::ZERO,
                })
                .await
                .map_err(api)?;
        }
        let made = self
            .package(
                &id,
                &dir,
                &subject,
                &about,
                video.as_ref(),
                view.as_ref(),
                by,
                now,
            )
            .await;
        // The clip copied into the package (gone already when it was written).
        let _ = std::fs::remove_file(temp_clip(&dir, &id));
        if video.is_some()
            && let Err(e) = b.store.end_hold(&holder, now).await
        {
            warn!(export = %id, error = %e, "cannot release an export's hold; it ends within the hour");
        }
        let file = made?;
        info!(export = %id, by, bytes = file.bytes, sha256 = %file.sha256, "evidence export written");
        Ok(file)
    }

    #[allow(clippy::too_many_arguments)]
    async fn package(
        &self,
        id: &str,
        dir: &Path,
        subject: &ExportSubject,
        about: &serde_json::Value,
        video: Option<&(CameraId, StreamKind, Timestamp, Timestamp)>,
        view: Option<&AlertView>,
        by: &str,
        now: Timestamp,
    ) -> Result<ExportFile, ApiError> {
        use xl_api::Backend;
        let b = self.backend;
        let mut builder_subject = json!({
            "export": id,
            "exported_by": by,
            "subject": about,
        });
        let mut files: Vec<(String, xl_evidence::Source)> = Vec::new();

        if let Some((camera, stream, from, to)) = video {
            let clip = make_clip(
                &b.store,
                &b.recordings,
                camera,
                *stream,
                *from,
                *to,
                self.on_behalf,
            );
            match clip.await {
                Ok(clip) => {
                    let path = temp_clip(dir, id);
                    let (start, end) = (clip.start_at(), clip.end_at());
                    write_clip(clip, path.clone()).await?;
                    builder_subject["video"] = json!({
                        "camera": camera, "stream": stream, "from": start, "to": end,
                    });
                    files.push((
                        format!("video/{camera}-{}.mp4", start.strftime("%Y%m%dT%H%M%SZ")),
                        xl_evidence::Source::Path(path),
                    ));
                }
                // An alert without recording is still exported, and says so.
                Err(e)
                    if e.kind == ErrorKind::NotFound
                        && matches!(subject, ExportSubject::Alert(_)) =>
                {
                    builder_subject["video"] = json!({"missing": e.message});
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(view) = view {
            files.push((
                "alert.json".to_owned(),
                xl_evidence::Source::Bytes(pretty(view)?),
            ));
            for s in &view.snapshots {
                if let Some((_, path)) = b.snapshot(&s.id).await? {
                    files.push((
                        format!("snapshots/{}.jpg", s.id),
                        xl_evidence::Source::Path(path),
                    ));
                }
            }
        }
        let (camera, from, to) = match (video, view) {
            (Some((c, _, f, t)), _) => (Some(c.clone()), *f, *t),
            (None, Some(v)) => (
                None,
                minus(v.alert.raised_at, DEFAULT_CLIP_PRE),
                plus(v.alert.raised_at, DEFAULT_CLIP_POST),
            ),
            (None, None) => return Err(ApiError::invalid("nothing to export")),
        };
        // The gate events of the alert's gate, or of the gates this camera watches.
        let topology = b.topology.applied.borrow().clone();
        let mut gates: Vec<xl_core::GateId> = view
            .and_then(|v| v.alert.gate.clone())
            .into_iter()
            .collect();
        if let Some(c) = &camera {
            gates.extend(
                topology
                    .gates
                    .values()
                    .filter(|g| g.camera.as_ref() == Some(c))
                    .map(|g| g.id.clone()),
            );
        }
        gates.sort();
        gates.dedup();
        let events = if gates.is_empty() {
            Vec::new()
        } else {
            b.gate_events(xl_api::backend::EventQuery {
                gates: Some(gates),
                from: Some(from),
                to: Some(to),
                limit: EXPORT_LIST_LIMIT,
                ..Default::default()
            })
            .await?
        };
        files.push((
            "gate_events.json".to_owned(),
            xl_evidence::Source::Bytes(pretty(&events)?),
        ));
        if view.is_none()
            && let Some(c) = &camera
        {
            // The alerts of the camera (or of its gates) raised in the range.
            let community = topology.cameras.get(c).map(|cam| cam.community.clone());
            let alerts: Vec<xl_core::Alert> = b
                .list_alerts(AlertQuery {
                    communities: community.map(|c| vec![c]),
                    from: Some(from),
                    to: Some(to),
                    limit: EXPORT_LIST_LIMIT,
                    ..Default::default()
                })
                .await?
                .into_iter()
                .filter(|a| a.camera.as_ref() == Some(c))
                .collect();
            files.push((
                "alerts.json".to_owned(),
                xl_evidence::Source::Bytes(pretty(&alerts)?),
            ));
        }

        let file_name = format!("export-{id}.zip");
        let path = dir.join(&file_name);
        let key = Arc::clone(self.key);
        let written = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || -> Result<(u64, String), String> {
                let mut builder = xl_evidence::ExportBuilder::new(builder_subject);
                for (name, source) in files {
                    builder.add_file(&name, source).map_err(|e| e.to_string())?;
                }
                builder
                    .write_to(&key, now, &path)
                    .map_err(|e| e.to_string())?;
                hash_file(&path).map_err(|e| format!("hashing {}: {e}", path.display()))
            })
            .await
        };
        let (bytes, sha256) = written
            .map_err(|e| ApiError::internal(format!("the export thread failed: {e}")))?
            .map_err(|e| ApiError::internal(format!("writing export {id}: {e}")))?;
        Ok(ExportFile {
            file_name,
            path,
            bytes,
            sha256,
        })
    }
}

/// Where an export's clip is written before it goes into the package.
fn temp_clip(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!(".{id}.mp4"))
}

fn pretty<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec_pretty(v).map_err(|e| ApiError::internal(format!("export JSON: {e}")))
}

/// Writes a whole clip to `path` (blocking, on a blocking thread).
async fn write_clip(clip: Clip, path: PathBuf) -> Result<(), ApiError> {
    tokio::task::spawn_blocking(move || -> Result<(), String> {
        let file = std::fs::File::create(&path).map_err(|e| e.to_string())?;
        let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
        clip.write_range(0, clip.len(), &mut out)
            .map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
        Ok(())
    })
    .await
    .map_err(|e| ApiError::internal(format!("the clip thread failed: {e}")))?
    .map_err(|e| ApiError::internal(format!("writing an export's video: {e}")))
}

/// The length and hex SHA-256 of a file.
fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        len += n as u64;
        h.update(&buf[..n]);
    }
    let digest = h.finalize();
    Ok((
        len,
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    ))
}
