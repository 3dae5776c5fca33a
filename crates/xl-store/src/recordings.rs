//! The recordings' index: one row per segment file (`recording_segments`), and the holds that
//! keep segments from retention and the disk guard (`recording_holds`).
//!
//! The store never touches the files: the recorder writes them and reports each segment
//! opened, closed or repaired; retention and the disk guard ask which segments may go, delete
//! the files, then [`Store::remove_segment`]. Segment and hold ids are numbered by the store
//! (MAX + 1 under the table's write lock) and never given twice, even after the newest rows
//! are removed.

use std::collections::BTreeMap;
use std::str::FromStr;

use jiff::{SignedDuration, Timestamp};
use sqlx::any::AnyRow;
use xl_core::CameraId;
use xl_core::camera::VideoCodec;
use xl_core::live::StreamKind;

use crate::gates::dup_or;
use crate::registry::is_relative_inside;
use crate::sql::{Reader, db, ms};
use crate::{Store, StoreError, Tx, last_number_sql, seq_floor};

/// Spaces between segments up to this long are not gaps: the usual `gap_secs` of
/// [`Store::recorded_ranges`].
pub const RECORDING_GAP_SECS: u32 = 2;

const SEGMENTS: &str = "recording_segments";
const HOLDS: &str = "recording_holds";

/// Where a segment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentState {
    /// Being written; `end_at` is not known yet.
    Open,
    /// Finished and fsynced by the recorder.
    Closed,
    /// Found open at start (the hub stopped while writing it) and truncated after its last
    /// complete fragment.
    Repaired,
}

impl SegmentState {
    pub fn as_str(self) -> &'static str {
        match self {
            SegmentState::Open => "open",
            SegmentState::Closed => "closed",
            SegmentState::Repaired => "repaired",
        }
    }
}

impl std::fmt::Display for SegmentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SegmentState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "open" => Ok(SegmentState::Open),
            "closed" => Ok(SegmentState::Closed),
            "repaired" => Ok(SegmentState::Repaired),
            _ => Err(format!(
                "segment state must be open, closed or repaired, not {s:?}"
            )),
        }
    }
}

/// A segment the recorder has started writing ([`Store::segment_opened`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSegment {
    pub camera: CameraId,
    pub stream: StreamKind,
    /// The first key frame's `received_at`.
    pub start_at: Timestamp,
    pub codec: VideoCodec,
    pub width: u32,
    pub height: u32,
    /// The decode time of the file's first sample, in 90 kHz units.
    pub media_start_90k: u64,
    /// Relative to the data directory (`recordings/<camera>/<stream>/<date>/<ms>.mp4`): not
    /// absolute, no `..` (the caller deletes it when the segment goes). Unique.
    pub path: String,
    /// The node whose disk holds the file (`[cluster] node`; '' for a single hub).
    pub node: String,
}

/// A stored segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRow {
    pub id: i64,
    pub camera: CameraId,
    pub stream: StreamKind,
    pub start_at: Timestamp,
    /// The last sample's `received_at` plus its duration; `None` while the segment is open.
    pub end_at: Option<Timestamp>,
    /// The file's size (0 while open).
    pub bytes: u64,
    pub codec: VideoCodec,
    pub width: u32,
    pub height: u32,
    pub media_start_90k: u64,
    pub path: String,
    pub state: SegmentState,
    /// The node whose disk holds the file ('' for a single hub).
    pub node: String,
}

/// A stretch of wall-clock time, `start` to `end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub start: Timestamp,
    pub end: Timestamp,
}

/// What [`Store::recorded_ranges`] found over a time range: where there is video and where
/// there is none, each in time order, together covering the range except for the spaces that
/// are too short to be gaps at its ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordedRanges {
    /// Recorded stretches: overlapping or adjacent segments merged, and spaces up to
    /// `gap_secs` between them bridged. Clipped to the range asked for.
    pub ranges: Vec<TimeRange>,
    /// Spaces longer than `gap_secs` before, between and after the ranges; the whole range
    /// (however short) when nothing was recorded in it.
    pub gaps: Vec<TimeRange>,
}

/// A hold to add ([`Store::add_hold`]): keeps the segments of `camera` (every stream) that
/// overlap `[from, to]` from retention and the disk guard while it lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHold {
    pub camera: CameraId,
    pub from: Timestamp,
    pub to: Timestamp,
    /// When the hold ends; `None`: while the holder lives (until [`Store::end_hold`]).
    pub until: Option<Timestamp>,
    /// Why, for people (`alert clip`, `evidence export`).
    pub reason: String,
    /// Who holds it (`alert:<id>`, `export:<id>`); [`Store::end_hold`] ends a holder's holds.
    pub holder: String,
    /// For a hold without an end held by an alert ([`alert_holder`]): how long it still keeps
    /// its segments after the alert is resolved (the store ends it in the transaction that
    /// resolves the alert). Zero for other holds.
    pub keep_after: SignedDuration,
}

/// The holder name of an alert's clip hold.
pub fn alert_holder(alert: &xl_core::AlertId) -> String {
    format!("alert:{alert}")
}

/// A stored hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldRow {
    pub id: i64,
    pub camera: CameraId,
    pub from: Timestamp,
    pub to: Timestamp,
    pub until: Option<Timestamp>,
    pub reason: String,
    pub holder: String,
    pub keep_after: SignedDuration,
}

impl HoldRow {
    /// Whether the hold still keeps its segments at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.until.is_none_or(|u| u > now)
    }
}

const SEGMENT_COLS: &str = "s.id, s.camera, s.stream, s.start_at, s.end_at, s.bytes, s.codec, \
                            s.width, s.height, s.media_start_90k, s.path, s.state, s.node";

const HOLD_COLS: &str = "id, camera, from_at, to_at, until_at, reason, holder, keep_after_ms";

/// `NOT EXISTS` a hold live at `$now` (the placeholder given) over segment `s`. Holds are
/// closed ranges: a hold that touches a segment's first or last instant keeps it.
fn unheld(now: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM recording_holds h WHERE h.camera = s.camera \
         AND h.from_at <= s.end_at AND h.to_at >= s.start_at \
         AND (h.until_at IS NULL OR h.until_at > {now}))"
    )
}

/// The instant (Unix ms) before which what is kept `keep` is past it; `None`: kept forever.
fn keep_cutoff(now: Timestamp, keep: Option<SignedDuration>) -> Option<i64> {
    keep.map(|k| {
        let k = i64::try_from(k.as_millis()).unwrap_or(i64::MAX);
        ms(now).saturating_sub(k)
    })
}

/// The stream kinds, as stored (the retention query lists them so it can use the
/// `(camera, stream, start_at)` index).
fn stream_kinds() -> [StreamKind; 2] {
    // A new kind fails to compile here until it is listed below.
    let _ = |s: StreamKind| match s {
        StreamKind::Main | StreamKind::Sub => (),
    };
    [StreamKind::Main, StreamKind::Sub]
}

fn codec_str(c: VideoCodec) -> &'static str {
    match c {
        VideoCodec::H264 => "h264",
        VideoCodec::H265 => "h265",
    }
}

fn segment_row(row: &AnyRow, op: &'static str) -> Result<SegmentRow, StoreError> {
    let r = Reader { row, op };
    let codec = match r.text("codec")?.as_str() {
        "h264" => VideoCodec::H264,
        "h265" => VideoCodec::H265,
        other => {
            return Err(StoreError::Corrupt {
                op,
                column: "codec".to_owned(),
                detail: format!("unknown codec {other:?}"),
            });
        }
    };
    Ok(SegmentRow {
        id: r.int("id")?,
        camera: r.parse("camera")?,
        stream: r.parse("stream")?,
        start_at: r.ts("start_at")?,
        end_at: r.opt_ts("end_at")?,
        bytes: r.u64("bytes")?,
        codec,
        width: r.u32("width")?,
        height: r.u32("height")?,
        media_start_90k: r.u64("media_start_90k")?,
        path: r.text("path")?,
        state: r.parse("state")?,
        node: r.text("node")?,
    })
}

fn hold_row(row: &AnyRow, op: &'static str) -> Result<HoldRow, StoreError> {
    let r = Reader { row, op };
    Ok(HoldRow {
        id: r.int("id")?,
        camera: r.parse("camera")?,
        from: r.ts("from_at")?,
        to: r.ts("to_at")?,
        until: r.opt_ts("until_at")?,
        reason: r.text("reason")?,
        holder: r.text("holder")?,
        keep_after: SignedDuration::from_millis(r.int("keep_after_ms")?),
    })
}

fn size(what: &str, v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Invalid(format!("{what} {v} is too large")))
}

/// The next id of `table` (its write lock held by `tx`).
async fn next_id(tx: &mut Tx, op: &'static str, table: &str) -> Result<i64, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(last_number_sql(table, "id")))
        .fetch_one(&mut **tx)
        .await
        .map_err(db(op))?;
    Ok(Reader { row: &row, op }.int("m")? + 1)
}

/// Records the highest id ever given in `table` before rows are deleted, so that none is
/// given again (see [`seq_floor`]).
async fn keep_id_floor(tx: &mut Tx, op: &'static str, table: &str) -> Result<(), StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(last_number_sql(table, "id")))
        .fetch_one(&mut **tx)
        .await
        .map_err(db(op))?;
    let last = Reader { row: &row, op }.int("m")?;
    sqlx::query(
        "INSERT INTO cursors (name, value) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(seq_floor(table))
    .bind(last)
    .execute(&mut **tx)
    .await
    .map_err(db(op))?;
    Ok(())
}

/// Checks and inserts a hold (the holds' write lock held by `tx`); returns its id.
pub(crate) async fn insert_hold(
    tx: &mut Tx,
    op: &'static str,
    h: &NewHold,
) -> Result<i64, StoreError> {
    if h.to < h.from {
        return Err(StoreError::Invalid(format!(
            "hold of {} on camera {}: it ends ({}) before it starts ({})",
            h.holder, h.camera, h.to, h.from
        )));
    }
    if h.holder.is_empty() {
        return Err(StoreError::Invalid(format!(
            "hold on camera {}: the holder is empty",
            h.camera
        )));
    }
    if h.keep_after.is_negative() {
        return Err(StoreError::Invalid(format!(
            "hold of {} on camera {}: keep_after is negative",
            h.holder, h.camera
        )));
    }
    let id = next_id(tx, op, HOLDS).await?;
    sqlx::query(
        "INSERT INTO recording_holds \
         (id, camera, from_at, to_at, until_at, reason, holder, keep_after_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(h.camera.as_str().to_owned())
    .bind(ms(h.from))
    .bind(ms(h.to))
    .bind(h.until.map(ms))
    .bind(crate::sql::text(&h.reason))
    .bind(crate::sql::text(&h.holder))
    .bind(h.keep_after.as_millis().clamp(0, i128::from(i64::MAX)) as i64)
    .execute(&mut **tx)
    .await
    .map_err(db(op))?;
    Ok(id)
}

/// An alert was resolved at `at` (in `tx`): its clip holds without an end now end their
/// `keep_after` later.
pub(crate) async fn alert_resolved(
    tx: &mut Tx,
    op: &'static str,
    alert: &xl_core::AlertId,
    at: Timestamp,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE recording_holds SET until_at = $2 + keep_after_ms \
         WHERE holder = $1 AND until_at IS NULL",
    )
    .bind(alert_holder(alert))
    .bind(ms(at))
    .execute(&mut **tx)
    .await
    .map_err(db(op))?;
    Ok(())
}

/// Merges segments (in start order, as [`Store::segments`] returns them) into recorded
/// ranges and gaps over `[from, to]`. An open segment counts as recorded until the next
/// segment starts, or to `to`.
fn merge(segments: &[SegmentRow], from: Timestamp, to: Timestamp, gap_secs: u32) -> RecordedRanges {
    let mut out = RecordedRanges::default();
    if from >= to {
        return out;
    }
    let gap = SignedDuration::from_secs(i64::from(gap_secs));
    for (i, s) in segments.iter().enumerate() {
        let end = match s.end_at {
            Some(end) => end,
            None => segments.get(i + 1).map_or(to, |next| next.start_at),
        };
        let (start, end) = (s.start_at.max(from), end.min(to));
        if end < start {
            continue;
        }
        match out.ranges.last_mut() {
            Some(r) if start.duration_since(r.end) <= gap => r.end = r.end.max(end),
            _ => out.ranges.push(TimeRange { start, end }),
        }
    }
    if out.ranges.is_empty() {
        out.gaps.push(TimeRange {
            start: from,
            end: to,
        });
        return out;
    }
    let mut covered = from;
    for r in &out.ranges {
        if r.start.duration_since(covered) > gap {
            out.gaps.push(TimeRange {
                start: covered,
                end: r.start,
            });
        }
        covered = r.end;
    }
    if to.duration_since(covered) > gap {
        out.gaps.push(TimeRange {
            start: covered,
            end: to,
        });
    }
    out
}

impl Store {
    /// Indexes a segment the recorder has started writing (state `open`, no end, 0 bytes);
    /// returns its id. A path already indexed fails with [`StoreError::Duplicate`].
    pub async fn segment_opened(&self, s: &NewSegment) -> Result<i64, StoreError> {
        const OP: &str = "indexing a recording segment";
        if !is_relative_inside(&s.path) {
            return Err(StoreError::Invalid(format!(
                "segment of camera {} at {}: path {:?} must be relative to the data directory, \
                 without '..'",
                s.camera, s.start_at, s.path
            )));
        }
        let media_start_90k = size("media start (90 kHz)", s.media_start_90k)?;
        let mut tx = self.begin_write(OP, &[SEGMENTS]).await?;
        let id = next_id(&mut tx, OP, SEGMENTS).await?;
        sqlx::query(
            "INSERT INTO recording_segments (id, camera, stream, start_at, end_at, bytes, codec, \
             width, height, media_start_90k, path, state, node) \
             VALUES ($1, $2, $3, $4, NULL, 0, $5, $6, $7, $8, $9, 'open', $10)",
        )
        .bind(id)
        .bind(s.camera.as_str().to_owned())
        .bind(s.stream.as_str())
        .bind(ms(s.start_at))
        .bind(codec_str(s.codec))
        .bind(i64::from(s.width))
        .bind(i64::from(s.height))
        .bind(media_start_90k)
        .bind(s.path.clone())
        .bind(crate::sql::text(&s.node))
        .execute(&mut *tx)
        .await
        .map_err(|source| dup_or(source, OP, "segment file", &s.path))?;
        tx.commit().await.map_err(db(OP))?;
        Ok(id)
    }

    /// Marks open segment `id` closed, ending at `end_at` with `bytes` written. Fails with
    /// `NotFound` when there is no such segment, and `Invalid` when it is not open or
    /// `end_at` is before its start.
    pub async fn segment_closed(
        &self,
        id: i64,
        end_at: Timestamp,
        bytes: u64,
    ) -> Result<(), StoreError> {
        self.finish_segment(
            "closing a recording segment",
            id,
            end_at,
            bytes,
            SegmentState::Closed,
        )
        .await
    }

    /// Marks open segment `id` repaired (the start-up repair truncated its file), ending at
    /// `end_at` with `bytes` left. Fails as [`Store::segment_closed`] does.
    pub async fn segment_repaired(
        &self,
        id: i64,
        end_at: Timestamp,
        bytes: u64,
    ) -> Result<(), StoreError> {
        self.finish_segment(
            "recording a repaired segment",
            id,
            end_at,
            bytes,
            SegmentState::Repaired,
        )
        .await
    }

    async fn finish_segment(
        &self,
        op: &'static str,
        id: i64,
        end_at: Timestamp,
        bytes: u64,
        state: SegmentState,
    ) -> Result<(), StoreError> {
        let bytes = size("segment size", bytes)?;
        let done = sqlx::query(
            "UPDATE recording_segments SET end_at = $2, bytes = $3, state = $4 \
             WHERE id = $1 AND state = 'open' AND start_at <= $2",
        )
        .bind(id)
        .bind(ms(end_at))
        .bind(bytes)
        .bind(state.as_str())
        .execute(&self.pool)
        .await
        .map_err(db(op))?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        // Say why nothing changed.
        match self.segment(id).await? {
            None => Err(StoreError::NotFound {
                what: "recording segment",
                id: id.to_string(),
            }),
            Some(s) if s.state != SegmentState::Open => Err(StoreError::Invalid(format!(
                "recording segment {id} is {}, not open",
                s.state
            ))),
            Some(s) => Err(StoreError::Invalid(format!(
                "recording segment {id}: end {end_at} is before its start {}",
                s.start_at
            ))),
        }
    }

    /// Removes segment `id` from the index (after its file was deleted, or found missing);
    /// whether there was one. Its id is not given again.
    pub async fn remove_segment(&self, id: i64) -> Result<bool, StoreError> {
        const OP: &str = "removing a recording segment";
        let mut tx = self.begin_write(OP, &[SEGMENTS]).await?;
        keep_id_floor(&mut tx, OP, SEGMENTS).await?;
        let done = sqlx::query("DELETE FROM recording_segments WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db(OP))?;
        tx.commit().await.map_err(db(OP))?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes from the index every segment node `node` recorded (a node that left the
    /// district for good: its files went with its disk, and no other node may delete its rows
    /// otherwise); how many. A single hub's rows (`''`) are never removed this way. Their ids
    /// are not given again.
    pub async fn forget_node_segments(&self, node: &str) -> Result<u64, StoreError> {
        const OP: &str = "forgetting a node's recording segments";
        if node.is_empty() {
            return Err(StoreError::Invalid(
                "a node's id is needed: a single hub's segments are not forgotten".into(),
            ));
        }
        let mut tx = self.begin_write(OP, &[SEGMENTS]).await?;
        keep_id_floor(&mut tx, OP, SEGMENTS).await?;
        let done = sqlx::query("DELETE FROM recording_segments WHERE node = $1")
            .bind(node)
            .execute(&mut *tx)
            .await
            .map_err(db(OP))?;
        tx.commit().await.map_err(db(OP))?;
        Ok(done.rows_affected())
    }

    /// The oldest and the newest segment recorded by a single hub (node `''`), if it left
    /// any: a node that joins a district checks that their files are on its disk before it
    /// takes them ([`Store::adopt_single_hub_segments`]).
    pub async fn single_hub_segment_ends(
        &self,
    ) -> Result<Option<(SegmentRow, SegmentRow)>, StoreError> {
        const OP: &str = "reading a single hub's first and last segments";
        // By start time: the index on (node, start_at) answers each in one probe.
        let mut ends = Vec::with_capacity(2);
        for order in ["ASC", "DESC"] {
            let sql = format!(
                "SELECT {SEGMENT_COLS} FROM recording_segments s WHERE s.node = '' \
                 ORDER BY s.start_at {order}, s.id {order} LIMIT 1"
            );
            let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_optional(&self.pool)
                .await
                .map_err(db(OP))?;
            match row {
                Some(r) => ends.push(segment_row(&r, OP)?),
                None => return Ok(None),
            }
        }
        let newest = ends.pop().expect("two ends");
        let oldest = ends.pop().expect("two ends");
        Ok(Some((oldest, newest)))
    }

    /// Names `node` as the recorder of every segment a single hub recorded (node `''`): the
    /// hub joined a district as `node`, and its files are on that node's disk. From then on
    /// the other nodes fetch them from it, and its repair, retention and disk guard take them.
    /// How many.
    pub async fn adopt_single_hub_segments(&self, node: &str) -> Result<u64, StoreError> {
        const OP: &str = "taking a single hub's recording segments";
        if node.is_empty() {
            return Err(StoreError::Invalid(
                "a node's id is needed to take a single hub's segments".into(),
            ));
        }
        let mut tx = self.begin_write(OP, &[SEGMENTS]).await?;
        let done = sqlx::query("UPDATE recording_segments SET node = $1 WHERE node = ''")
            .bind(node)
            .execute(&mut *tx)
            .await
            .map_err(db(OP))?;
        tx.commit().await.map_err(db(OP))?;
        Ok(done.rows_affected())
    }

    /// One segment, or `None`.
    pub async fn segment(&self, id: i64) -> Result<Option<SegmentRow>, StoreError> {
        const OP: &str = "reading a recording segment";
        let sql = format!("SELECT {SEGMENT_COLS} FROM recording_segments s WHERE s.id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db(OP))?;
        row.map(|r| segment_row(&r, OP)).transpose()
    }

    /// `node`'s segments still open, oldest first: at start, before recording, the ones the
    /// node was writing when it stopped (to repair). Another node's open segments are its own
    /// business: it may be writing them now.
    pub async fn open_segments(&self, node: &str) -> Result<Vec<SegmentRow>, StoreError> {
        const OP: &str = "listing open recording segments";
        let sql = format!(
            "SELECT {SEGMENT_COLS} FROM recording_segments s WHERE s.node = $1 \
             AND s.state = 'open' ORDER BY s.start_at, s.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(crate::sql::text(node))
            .fetch_all(&self.pool)
            .await
            .map_err(db(OP))?;
        rows.iter().map(|r| segment_row(r, OP)).collect()
    }

    /// The segments of `camera`'s `stream` that overlap `[from, to)` (an open one overlaps
    /// from its start on), in time order.
    pub async fn segments(
        &self,
        camera: &CameraId,
        stream: StreamKind,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<SegmentRow>, StoreError> {
        const OP: &str = "listing recording segments";
        let sql = format!(
            "SELECT {SEGMENT_COLS} FROM recording_segments s WHERE s.camera = $1 \
             AND s.stream = $2 AND s.start_at < $4 AND (s.end_at IS NULL OR s.end_at > $3) \
             ORDER BY s.start_at, s.id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(camera.as_str().to_owned())
            .bind(stream.as_str())
            .bind(ms(from))
            .bind(ms(to))
            .fetch_all(&self.pool)
            .await
            .map_err(db(OP))?;
        rows.iter().map(|r| segment_row(r, OP)).collect()
    }

    /// Where `camera`'s `stream` has video over `[from, to)`, and where it has none: the
    /// timeline, and the gaps a request for a range without video is answered with. Segments
    /// that overlap or lie at most `gap_secs` apart (usually [`RECORDING_GAP_SECS`]) make one
    /// range. An open segment counts as recorded until the next segment starts, or to `to`:
    /// pass a `to` no later than now.
    pub async fn recorded_ranges(
        &self,
        camera: &CameraId,
        stream: StreamKind,
        from: Timestamp,
        to: Timestamp,
        gap_secs: u32,
    ) -> Result<RecordedRanges, StoreError> {
        let segments = self.segments(camera, stream, from, to).await?;
        Ok(merge(&segments, from, to, gap_secs))
    }

    /// Adds a hold; returns its id.
    pub async fn add_hold(&self, h: &NewHold) -> Result<i64, StoreError> {
        const OP: &str = "adding a recording hold";
        let mut tx = self.begin_write(OP, &[HOLDS]).await?;
        let id = insert_hold(&mut tx, OP, h).await?;
        tx.commit().await.map_err(db(OP))?;
        Ok(id)
    }

    /// Ends `holder`'s holds at `until`: a hold without an end, or ending later, then ends
    /// there (now, to release the segments at once; now plus the evidence retention, for a
    /// resolved alert's clip). The rows stay (see [`Store::delete_ended_holds`]). Returns how
    /// many holds changed.
    pub async fn end_hold(&self, holder: &str, until: Timestamp) -> Result<u64, StoreError> {
        const OP: &str = "ending recording holds";
        let done = sqlx::query(
            "UPDATE recording_holds SET until_at = $2 \
             WHERE holder = $1 AND (until_at IS NULL OR until_at > $2)",
        )
        .bind(crate::sql::text(holder))
        .bind(ms(until))
        .execute(&self.pool)
        .await
        .map_err(db(OP))?;
        Ok(done.rows_affected())
    }

    /// The holds on `camera` that overlap `[from, to]`, live or ended ([`HoldRow::is_live`]),
    /// by start.
    pub async fn holds_overlapping(
        &self,
        camera: &CameraId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<HoldRow>, StoreError> {
        const OP: &str = "listing recording holds";
        let sql = format!(
            "SELECT {HOLD_COLS} FROM recording_holds WHERE camera = $1 AND from_at <= $3 \
             AND to_at >= $2 ORDER BY from_at, id"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(camera.as_str().to_owned())
            .bind(ms(from))
            .bind(ms(to))
            .fetch_all(&self.pool)
            .await
            .map_err(db(OP))?;
        rows.iter().map(|r| hold_row(r, OP)).collect()
    }

    /// Deletes the holds that ended at or before `now`; how many. Their ids are not given
    /// again.
    pub async fn delete_ended_holds(&self, now: Timestamp) -> Result<u64, StoreError> {
        const OP: &str = "deleting ended recording holds";
        let mut tx = self.begin_write(OP, &[HOLDS]).await?;
        keep_id_floor(&mut tx, OP, HOLDS).await?;
        let done = sqlx::query(
            "DELETE FROM recording_holds WHERE until_at IS NOT NULL AND until_at <= $1",
        )
        .bind(ms(now))
        .execute(&mut *tx)
        .await
        .map_err(db(OP))?;
        tx.commit().await.map_err(db(OP))?;
        Ok(done.rows_affected())
    }

    /// `node`'s segments past retention at `now` (each node deletes the files on its own
    /// disk): closed or repaired, ended longer than their camera's keep ago, and overlapped by
    /// no hold live at `now`. `keep_per_camera` gives a camera's
    /// keep (`None`: kept forever; a camera listed twice: the later entry counts); the other
    /// cameras (also the ones no longer configured) keep `default_keep`. At most `limit`,
    /// each camera's oldest first; the caller deletes the files, then
    /// [`Store::remove_segment`], and asks again until none is left.
    pub async fn expired_segments(
        &self,
        node: &str,
        keep_per_camera: &[(CameraId, Option<SignedDuration>)],
        default_keep: Option<SignedDuration>,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<SegmentRow>, StoreError> {
        const OP: &str = "listing expired recording segments";
        let listed: BTreeMap<&CameraId, Option<SignedDuration>> =
            keep_per_camera.iter().map(|(c, d)| (c, *d)).collect();
        let streams = stream_kinds()
            .map(|k| format!("'{}'", k.as_str()))
            .join(", ");
        let mut out = Vec::new();
        for (camera, keep) in &listed {
            let left = limit.saturating_sub(u32::try_from(out.len()).unwrap_or(u32::MAX));
            let Some(c) = keep_cutoff(now, *keep) else {
                continue;
            };
            if left == 0 {
                break;
            }
            let sql = format!(
                "SELECT {SEGMENT_COLS} FROM recording_segments s WHERE s.camera = $1 \
                 AND s.stream IN ({streams}) AND s.start_at < $2 AND s.end_at < $2 \
                 AND s.state <> 'open' AND s.node = $5 AND {} \
                 ORDER BY s.start_at, s.id LIMIT $4",
                unheld("$3")
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(camera.as_str().to_owned())
                .bind(c)
                .bind(ms(now))
                .bind(i64::from(left))
                .bind(crate::sql::text(node))
                .fetch_all(&self.pool)
                .await
                .map_err(db(OP))?;
            for r in &rows {
                out.push(segment_row(r, OP)?);
            }
        }
        let left = limit.saturating_sub(u32::try_from(out.len()).unwrap_or(u32::MAX));
        if let (Some(c), true) = (keep_cutoff(now, default_keep), left > 0) {
            // $1 cutoff, $2 now, $3 limit, $4 node, then the listed cameras.
            let not_listed = if listed.is_empty() {
                String::new()
            } else {
                let ps: Vec<String> = (0..listed.len()).map(|i| format!("${}", i + 5)).collect();
                format!("AND s.camera NOT IN ({}) ", ps.join(", "))
            };
            let sql = format!(
                "SELECT {SEGMENT_COLS} FROM recording_segments s WHERE s.start_at < $1 \
                 AND s.end_at < $1 AND s.state <> 'open' AND s.node = $4 {not_listed}AND {} \
                 ORDER BY s.start_at, s.id LIMIT $3",
                unheld("$2")
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(c)
                .bind(ms(now))
                .bind(i64::from(left))
                .bind(crate::sql::text(node));
            for camera in listed.keys() {
                q = q.bind(camera.as_str().to_owned());
            }
            let rows = q.fetch_all(&self.pool).await.map_err(db(OP))?;
            for r in &rows {
                out.push(segment_row(r, OP)?);
            }
        }
        Ok(out)
    }

    /// For `node`'s disk guard: its oldest segments (by start, across cameras and streams)
    /// that may go at `now`: closed or repaired, overlapped by no live hold; at most `limit`.
    /// Never an open segment or a held one, however full the disk.
    pub async fn oldest_unheld_segments(
        &self,
        node: &str,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<SegmentRow>, StoreError> {
        const OP: &str = "listing the oldest recording segments";
        let sql = format!(
            "SELECT {SEGMENT_COLS} FROM recording_segments s WHERE s.node = $3 \
             AND s.state <> 'open' AND {} ORDER BY s.start_at, s.id LIMIT $2",
            unheld("$1")
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(ms(now))
            .bind(i64::from(limit))
            .bind(crate::sql::text(node))
            .fetch_all(&self.pool)
            .await
            .map_err(db(OP))?;
        rows.iter().map(|r| segment_row(r, OP)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_735_689_600;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(T0 + secs).unwrap()
    }

    fn seg(start: i64, end: Option<i64>) -> SegmentRow {
        SegmentRow {
            id: start,
            camera: CameraId::new("cam").unwrap(),
            stream: StreamKind::Main,
            start_at: at(start),
            end_at: end.map(at),
            bytes: 0,
            codec: VideoCodec::H264,
            width: 1920,
            height: 1080,
            media_start_90k: 0,
            path: format!("{start}.mp4"),
            state: if end.is_some() {
                SegmentState::Closed
            } else {
                SegmentState::Open
            },
            node: String::new(),
        }
    }

    fn spans(v: &[TimeRange]) -> Vec<(i64, i64)> {
        v.iter()
            .map(|r| (r.start.as_second() - T0, r.end.as_second() - T0))
            .collect()
    }

    type Spans = Vec<(i64, i64)>;
    /// (what, segments, [from, to], ranges, gaps).
    type Case = (&'static str, Vec<SegmentRow>, (i64, i64), Spans, Spans);

    #[test]
    fn segments_merge_into_ranges_and_gaps() {
        // Gaps are spaces over 2 s.
        let cases: Vec<Case> = vec![
            ("nothing recorded", vec![], (0, 100), vec![], vec![(0, 100)]),
            (
                "nothing recorded in a range shorter than a gap",
                vec![],
                (0, 1),
                vec![],
                vec![(0, 1)],
            ),
            (
                "adjacent",
                vec![seg(0, Some(60)), seg(60, Some(120))],
                (0, 120),
                vec![(0, 120)],
                vec![],
            ),
            (
                "overlapping at the edges",
                vec![seg(0, Some(61)), seg(60, Some(120))],
                (0, 120),
                vec![(0, 120)],
                vec![],
            ),
            (
                "a space of 2 s is bridged",
                vec![seg(0, Some(60)), seg(62, Some(120))],
                (0, 120),
                vec![(0, 120)],
                vec![],
            ),
            (
                "a 20 s gap",
                vec![seg(0, Some(60)), seg(80, Some(140))],
                (0, 140),
                vec![(0, 60), (80, 140)],
                vec![(60, 80)],
            ),
            (
                "clipped to the range, with gaps at both ends",
                vec![seg(-30, Some(30)), seg(40, Some(50))],
                (10, 100),
                vec![(10, 30), (40, 50)],
                vec![(30, 40), (50, 100)],
            ),
            (
                "short spaces at the ends are not gaps",
                vec![seg(1, Some(99))],
                (0, 100),
                vec![(1, 99)],
                vec![],
            ),
            (
                "an open segment at the end runs to the range's end",
                vec![seg(0, Some(60)), seg(60, None)],
                (0, 300),
                vec![(0, 300)],
                vec![],
            ),
            (
                "an open segment followed by another ends where it starts",
                vec![seg(0, None), seg(100, Some(160))],
                (0, 200),
                vec![(0, 160)],
                vec![(160, 200)],
            ),
            (
                "a segment inside another",
                vec![seg(0, Some(100)), seg(10, Some(20))],
                (0, 100),
                vec![(0, 100)],
                vec![],
            ),
            (
                "an empty range",
                vec![seg(0, Some(60))],
                (30, 30),
                vec![],
                vec![],
            ),
        ];
        for (what, segments, (from, to), ranges, gaps) in cases {
            let got = merge(&segments, at(from), at(to), 2);
            assert_eq!(spans(&got.ranges), ranges, "{what}: ranges");
            assert_eq!(spans(&got.gaps), gaps, "{what}: gaps");
        }
    }

    #[test]
    fn segment_states_round_trip() {
        for s in [
            SegmentState::Open,
            SegmentState::Closed,
            SegmentState::Repaired,
        ] {
            assert_eq!(s.as_str().parse::<SegmentState>(), Ok(s));
        }
        assert!("torn".parse::<SegmentState>().is_err());
    }
}
