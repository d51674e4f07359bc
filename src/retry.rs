//! The one retry policy of every stage: exponential backoff with a cap, an optional deadline,
//! and a closure that says, per error, whether to try again. Callers classify errors by kind
//! (a MySQL error number, a Kafka error code), never by message text.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The error may go away (a restart, a stall, a lock): try again after the backoff.
    Retry,
    /// Trying again cannot help: return the error now.
    Stop,
}

/// How often and how long to retry.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    /// Give up after this long (measured from the first attempt); `None` retries until
    /// cancelled.
    pub deadline: Option<Duration>,
    /// Log each failed attempt (not while waiting for a service to come up).
    pub log: bool,
}

impl Backoff {
    /// 100 ms doubling to 5 s, for calls to a service that restarts within seconds.
    pub const fn service(deadline: Option<Duration>) -> Backoff {
        Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_secs(5),
            deadline,
            log: true,
        }
    }

    /// 250 ms between attempts, quietly, until `deadline`: waiting for a service to start.
    pub const fn startup(deadline: Duration) -> Backoff {
        Backoff {
            first: Duration::from_millis(250),
            max: Duration::from_millis(250),
            deadline: Some(deadline),
            log: false,
        }
    }

    /// The waits between attempts, in order.
    fn waits(self) -> impl Iterator<Item = Duration> {
        std::iter::successors(Some(self.first), move |w| Some((*w * 2).min(self.max)))
    }
}

/// Why [`retry`] returned an error.
#[derive(Debug)]
pub enum Failure<E> {
    /// The closure said stop, or the deadline passed: the last error.
    Gave(E),
    /// Cancelled while waiting to try again: the last error.
    Cancelled(E),
}

impl<E> Failure<E> {
    pub fn into_inner(self) -> E {
        match self {
            Failure::Gave(e) | Failure::Cancelled(e) => e,
        }
    }
}

/// Runs `attempt` until it succeeds, `verdict` says stop, the deadline passes or `cancel`
/// fires. Every retried error is logged with `what` and the wait before the next attempt.
pub async fn retry<T, E, Fut>(
    what: &str,
    policy: Backoff,
    cancel: &CancellationToken,
    mut attempt: impl FnMut() -> Fut,
    verdict: impl Fn(&E) -> Verdict,
) -> Result<T, Failure<E>>
where
    Fut: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let started = Instant::now();
    let mut waits = policy.waits();
    loop {
        let error = match attempt().await {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        let wait = waits.next().expect("an endless iterator");
        let out_of_time = policy
            .deadline
            .is_some_and(|d| started.elapsed() + wait > d);
        if verdict(&error) == Verdict::Stop || out_of_time {
            return Err(Failure::Gave(error));
        }
        if cancel.is_cancelled() {
            return Err(Failure::Cancelled(error));
        }
        if policy.log {
            tracing::warn!("{what} failed, retrying in {wait:?}: {error:#}");
        }
        tokio::select! {
            _ = cancel.cancelled() => return Err(Failure::Cancelled(error)),
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn quick(deadline: Option<Duration>) -> Backoff {
        Backoff {
            first: Duration::from_millis(1),
            max: Duration::from_millis(4),
            deadline,
            log: true,
        }
    }

    #[tokio::test]
    async fn retries_until_success_and_stops_when_told() {
        let calls = AtomicU32::new(0);
        let result: Result<u32, _> = retry(
            "test",
            quick(None),
            &CancellationToken::new(),
            || async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                if n < 3 {
                    Err(format!("try {n}"))
                } else {
                    Ok(n)
                }
            },
            |_| Verdict::Retry,
        )
        .await;
        assert_eq!(result.unwrap(), 3);

        calls.store(0, Ordering::SeqCst);
        let result: Result<(), _> = retry(
            "test",
            quick(None),
            &CancellationToken::new(),
            || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err("permanent")
            },
            |_| Verdict::Stop,
        )
        .await;
        assert!(matches!(result, Err(Failure::Gave("permanent"))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_deadline_or_a_cancel_ends_the_retries() {
        let started = Instant::now();
        let result: Result<(), _> = retry(
            "test",
            quick(Some(Duration::from_millis(30))),
            &CancellationToken::new(),
            || async { Err("down") },
            |_| Verdict::Retry,
        )
        .await;
        assert!(matches!(result, Err(Failure::Gave("down"))));
        assert!(started.elapsed() < Duration::from_secs(1));

        let cancel = CancellationToken::new();
        cancel.cancel();
        let result: Result<(), _> = retry(
            "test",
            quick(None),
            &cancel,
            || async { Err("down") },
            |_| Verdict::Retry,
        )
        .await;
        assert!(matches!(result, Err(Failure::Cancelled("down"))));
    }
}
