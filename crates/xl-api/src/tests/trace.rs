//! Each request runs in one `http` span named by its route template, and says its status.

use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use super::*;

/// `name=value` of every field, in order.
#[derive(Default)]
struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ = write!(self.0, "{}={value:?} ", field.name());
    }
}

/// The `http` spans opened and the events logged inside one, as text.
#[derive(Clone, Default)]
struct Seen {
    spans: Arc<Mutex<Vec<String>>>,
    events: Arc<Mutex<Vec<String>>>,
}

impl<S> Layer<S> for Seen
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: Context<'_, S>,
    ) {
        if attrs.metadata().name() == "http" {
            let mut f = Fields::default();
            attrs.record(&mut f);
            self.spans.lock().unwrap().push(f.0);
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        if ctx.event_span(event).is_some_and(|s| s.name() == "http") {
            let mut f = Fields::default();
            event.record(&mut f);
            self.events.lock().unwrap().push(f.0);
        }
    }
}

#[tokio::test]
async fn requests_are_traced_by_route_template_with_their_status() {
    let seen = Seen::default();
    // Tracing caches each callsite's interest globally, and tests running in parallel hit the
    // `http` span's and its events' callsites with no subscriber: registering a callsite can
    // race with this test's subscriber and leave one cached as "never" (seen in 1 full run in
    // 3 even after rebuilding the cache once). So the cache is rebuilt before each try, and the
    // requests are tried up to five times until the subscriber sees the spans and their
    // events; what it then sees is checked.
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(seen.clone()));
    let mut spans = Vec::new();
    for _ in 0..5 {
        seen.spans.lock().unwrap().clear();
        seen.events.lock().unwrap().clear();
        tracing::callsite::rebuild_interest_cache();
        let (status, _) = get("/api/v1/cameras/cam-a", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = get("/api/v1/cameras/no-such-camera", Some(TOKEN)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        spans = seen.spans.lock().unwrap().clone();
        let timed = seen
            .events
            .lock()
            .unwrap()
            .iter()
            .any(|e| e.contains("latency_ms="));
        if !spans.is_empty() && timed {
            break;
        }
    }
    assert_eq!(spans.len(), 2, "{spans:?}");
    for s in &spans {
        // The template, never the ids a client put in the path.
        assert!(s.contains("route=/api/v1/cameras/{id}"), "{s}");
        assert!(s.contains("method=GET") && !s.contains("cam-a"), "{s}");
    }
    let events = seen.events.lock().unwrap().clone();
    let statuses: Vec<&str> = events
        .iter()
        .filter(|e| e.contains("latency_ms="))
        .filter_map(|e| e.split("status=").nth(1)?.split(' ').next())
        .collect();
    assert_eq!(statuses, ["200", "404"], "{events:?}");
}
