//! A stage of `up` (processor, producer, dashboard) run under supervision, like the services:
//! an error or a panic is reported on the [`StageBoard`] and the stage is started again with
//! backoff, until the appliance stops.

use std::any::Any;
use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::health::{StageBoard, StageState};
use crate::retry::{Backoff, Verdict, retry};

/// Waits before a failed stage starts again: 1 s doubling to 30 s.
const RESTART: Backoff = Backoff {
    first: Duration::from_secs(1),
    max: Duration::from_secs(30),
    deadline: None,
    log: true,
};

/// Runs `stage` (each call starts it afresh) until it finishes or `shutdown` fires; a
/// failure (an error, or a panic in its task) restarts it.
pub fn supervise<F, Fut>(
    name: &'static str,
    board: StageBoard,
    shutdown: CancellationToken,
    mut stage: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    tokio::spawn(async move {
        let outcome = retry(
            &format!("the {name} stage"),
            RESTART,
            &shutdown.clone(),
            || {
                board.set(name, StageState::Running, None);
                let run = tokio::spawn(stage());
                let (board, shutdown) = (board.clone(), shutdown.clone());
                async move {
                    let error = match run.await {
                        Ok(Ok(())) => return Ok(()),
                        Ok(Err(e)) => format!("{e:#}"),
                        Err(join) => match join.try_into_panic() {
                            Ok(payload) => format!("panicked: {}", panic_message(&*payload)),
                            Err(e) => e.to_string(),
                        },
                    };
                    if !shutdown.is_cancelled() {
                        board.set(name, StageState::Restarting, Some(error.clone()));
                    }
                    Err(error)
                }
            },
            |_| Verdict::Retry,
        )
        .await;
        let state = match outcome {
            Ok(()) if !shutdown.is_cancelled() => StageState::Finished,
            _ => StageState::Stopped,
        };
        board.set(name, state, None);
    })
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_panicking_or_failing_stage_is_restarted_and_reported() {
        let board = StageBoard::default();
        let runs = Arc::new(AtomicU32::new(0));
        let counter = runs.clone();
        let done = supervise(
            "processor",
            board.clone(),
            CancellationToken::new(),
            move || {
                let run = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    match run {
                        0 => panic!("overflow in the rollups"),
                        1 => anyhow::bail!("MySQL refused"),
                        _ => Ok(()),
                    }
                }
            },
        );
        done.await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        let health = &board.snapshot()["processor"];
        assert_eq!(health.state, StageState::Finished);
        assert_eq!(health.restarts, 2);
        assert_eq!(health.last_error.as_deref(), Some("MySQL refused"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_down_stage_degrades_the_board_until_it_runs_again() {
        let board = StageBoard::default();
        let shutdown = CancellationToken::new();
        let handle = supervise("producer", board.clone(), shutdown.clone(), || async {
            anyhow::bail!("broker gone")
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(board.degraded());
        assert_eq!(
            board.snapshot()["producer"].last_error.as_deref(),
            Some("broker gone")
        );
        shutdown.cancel();
        handle.await.unwrap();
        assert_eq!(board.snapshot()["producer"].state, StageState::Stopped);
        assert!(!board.degraded());
    }
}
