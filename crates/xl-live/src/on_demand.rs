//! A stream pulled only while something consumes it (a camera's main stream, a transcoded
//! copy of an H.265 stream): the pull starts with the tee's first subscriber and stops when the
//! last one has been gone for a while (so a viewer switching tiles does not make the camera
//! set up a new session each time).

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::debug;

use crate::tee::Tee;

/// What starting a pull gives back: dropping it stops the pull.
pub type Pull = Box<dyn Any + Send>;

/// See the module documentation. Dropping it stops the pull and the watcher.
pub struct OnDemand {
    tee: Arc<Tee>,
    watcher: JoinHandle<()>,
}

impl OnDemand {
    /// Watches `tee`'s subscribers: `start` is called (on a tokio worker: it must not block)
    /// when the first one comes, and what it returned is dropped `linger` after the last one
    /// left. `name` is for the log.
    pub fn new(
        name: String,
        tee: Arc<Tee>,
        linger: Duration,
        start: impl Fn() -> Pull + Send + 'static,
    ) -> Self {
        let mut subscribers = tee.subscribers();
        let watcher = tokio::spawn(async move {
            let mut pull: Option<Pull> = None;
            loop {
                let wanted = *subscribers.borrow_and_update() > 0;
                if wanted && pull.is_none() {
                    debug!(stream = %name, "pull started on demand");
                    pull = Some(start());
                } else if !wanted && pull.is_some() {
                    tokio::select! {
                        () = tokio::time::sleep(linger) => {
                            if *subscribers.borrow() == 0 {
                                debug!(stream = %name, "pull stopped: nobody watches");
                                pull = None;
                            }
                            continue;
                        }
                        changed = subscribers.changed() => {
                            if changed.is_err() {
                                return;
                            }
                            continue;
                        }
                    }
                }
                if subscribers.changed().await.is_err() {
                    return;
                }
            }
        });
        OnDemand { tee, watcher }
    }

    pub fn tee(&self) -> &Arc<Tee> {
        &self.tee
    }
}

impl Drop for OnDemand {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use xl_core::frame::AccessUnitSink;

    struct Nothing;
    impl AccessUnitSink for Nothing {
        fn stream_started(&self, _: xl_core::camera::VideoCodec) {}
        fn push(&self, _: xl_core::frame::AccessUnit) {}
    }

    /// Counts pulls running: +1 when started, -1 when dropped.
    struct Running(Arc<AtomicUsize>);
    impl Drop for Running {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }

    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_pull_runs_while_watched_and_stops_after_the_linger() {
        let tee = Arc::new(Tee::new());
        let running = Arc::new(AtomicUsize::new(0));
        let starts = Arc::new(AtomicUsize::new(0));
        let on_demand = OnDemand::new("t".into(), Arc::clone(&tee), Duration::from_secs(10), {
            let (running, starts) = (Arc::clone(&running), Arc::clone(&starts));
            move || {
                running.fetch_add(1, Ordering::SeqCst);
                starts.fetch_add(1, Ordering::SeqCst);
                Box::new(Running(Arc::clone(&running)))
            }
        });
        settle().await;
        assert_eq!(running.load(Ordering::SeqCst), 0, "nobody watches yet");
        let a = tee.subscribe(Arc::new(Nothing));
        let b = tee.subscribe(Arc::new(Nothing));
        settle().await;
        assert_eq!(
            running.load(Ordering::SeqCst),
            1,
            "one pull for two viewers"
        );
        drop(a);
        drop(b);
        tokio::time::sleep(Duration::from_secs(5)).await;
        settle().await;
        assert_eq!(running.load(Ordering::SeqCst), 1, "still lingering");
        let c = tee.subscribe(Arc::new(Nothing));
        tokio::time::sleep(Duration::from_secs(20)).await;
        settle().await;
        assert_eq!(
            running.load(Ordering::SeqCst),
            1,
            "a viewer came back in time"
        );
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        drop(c);
        tokio::time::sleep(Duration::from_secs(11)).await;
        settle().await;
        assert_eq!(
            running.load(Ordering::SeqCst),
            0,
            "stopped after the linger"
        );
        let _d = tee.subscribe(Arc::new(Nothing));
        settle().await;
        assert_eq!(
            starts.load(Ordering::SeqCst),
            2,
            "started again for a new viewer"
        );
        drop(on_demand);
        settle().await;
        assert_eq!(
            running.load(Ordering::SeqCst),
            0,
            "dropping it stops the pull"
        );
    }
}
