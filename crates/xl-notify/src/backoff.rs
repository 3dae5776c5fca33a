//! The reconnect back-off (xl-core's, jittered ±20%), and a sleep that gives way to shutdown.

use std::time::Duration;

pub(crate) use xl_core::backoff::Backoff;

use tokio_util::sync::CancellationToken;

/// [`xl_core::backoff::Backoff`] with its jitter drawn here.
pub(crate) fn jittered(backoff: &mut Backoff) -> Duration {
    backoff.next_delay(rand::random())
}

/// Sleeps `d`; true when shutdown came first.
pub(crate) async fn sleep_or_shutdown(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => false,
        () = shutdown.cancelled() => true,
    }
}

/// Seconds from config as a `Duration` (negative and NaN become zero).
pub(crate) fn secs(s: f64) -> Duration {
    Duration::try_from_secs_f64(s).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_fifth() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        let d: Vec<u128> = (0..12).map(|_| jittered(&mut b).as_millis()).collect();
        assert!((800..=1200).contains(&d[0]), "{d:?}");
        assert!((1600..=2400).contains(&d[1]), "{d:?}");
        assert!((240_000..=360_000).contains(&d[11]), "{d:?}");
    }
}
