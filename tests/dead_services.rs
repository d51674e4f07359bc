//! A dead dependency gives a clear error within its deadline, not a hang: a closed port (the
//! service is down) and a silent one (it accepts connections and never answers).

use std::net::TcpListener;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tickpipe");

fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port that accepts connections and never says a word (kept open by a background thread).
fn silent_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

/// Runs tickpipe against external services at the given ports, with 3 s deadlines.
fn run(args: &[&str], kafka: u16, mysql: u16) -> (Output, Duration) {
    let state = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let output = Command::new(BIN)
        .arg("--state-dir")
        .arg(state.path())
        .args(args)
        .env("TICKPIPE_BROKER__MODE", "external")
        .env("TICKPIPE_BROKER__BOOTSTRAP", format!("127.0.0.1:{kafka}"))
        .env("TICKPIPE_BROKER__STARTUP_TIMEOUT", "3s")
        .env("TICKPIPE_MYSQL__MODE", "external")
        .env(
            "TICKPIPE_MYSQL__URL",
            format!("mysql://app:secret@127.0.0.1:{mysql}/stock_market"),
        )
        .env("TICKPIPE_MYSQL__STARTUP_TIMEOUT", "3s")
        .output()
        .unwrap();
    (output, started.elapsed())
}

#[test]
fn commands_fail_clearly_and_promptly_when_services_are_down_or_silent() {
    for (kind, kafka, mysql) in [
        ("closed", closed_port(), closed_port()),
        ("silent", silent_port(), silent_port()),
    ] {
        for args in [&["produce"][..], &["process"], &["up"]] {
            let (output, took) = run(args, kafka, mysql);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{kind} {args:?} succeeded");
            assert!(
                took < Duration::from_secs(30),
                "{kind} {args:?} took {took:?}"
            );
            let names_it = stderr.contains(&format!("Kafka at 127.0.0.1:{kafka}"))
                || stderr.contains(&format!("MySQL at 127.0.0.1:{mysql}"));
            assert!(
                names_it,
                "{kind} {args:?}: the error names no service:\n{stderr}"
            );
            assert!(
                !stderr.contains("secret"),
                "a password was printed:\n{stderr}"
            );
        }

        let (output, took) = run(&["status", "--json"], kafka, mysql);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{kind}: status exits with 1 when services are down"
        );
        assert!(
            took < Duration::from_secs(30),
            "{kind}: status took {took:?}"
        );
        let status: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(status["broker"]["healthy"], false);
        assert_eq!(status["mysql"]["healthy"], false);
        assert!(
            status["mysql"]["error"]
                .as_str()
                .unwrap()
                .contains("did not answer"),
            "{status:#}"
        );
    }
}
