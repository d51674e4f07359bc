//! The workshop (`docs/workshop.md`) cannot rot: its `bash` blocks run, in order, as one
//! script against a freshly started appliance on the sample data with live ticks — as a
//! participant would type them after `scripts/demo.sh` — and must all pass (each exercise
//! ends in checks of its own). Real Kafka, MariaDB and Spark.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

/// The `bash` blocks of a Markdown file, in order (`sh` blocks are for the reader only).
fn bash_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```bash") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), text) => {
                block.push_str(text);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(current.is_none(), "an unclosed code block");
    blocks
}

#[test]
fn every_workshop_exercise_runs_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let markdown = std::fs::read_to_string(root.join("docs/workshop.md")).unwrap();
    let blocks = bash_blocks(&markdown);
    for exercise in [
        "## 1. Watch rows arrive",
        "## 2. Kill a processor",
        "## 3. Feed it bad data",
        "## 4. Read the topic with Kafka's console consumer",
        "## 5. Connect a BI tool",
        "## 6. Run the same stream through Spark",
    ] {
        let after = markdown.split(exercise).nth(1).unwrap_or_else(|| {
            panic!("the workshop has no exercise {exercise:?}");
        });
        let section = after.split("\n## ").next().unwrap();
        assert!(
            section.contains("```bash"),
            "{exercise} has no commands the test runs"
        );
    }

    let data = format!("{}/data/*.csv", root.display());
    let appliance = Appliance::start(&["--data", &data], &[("TICKPIPE_LIVE__ENABLED", "true")]);
    let binaries = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        binaries.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // What a failing exercise leaves behind goes too: background processors, the work folder.
    let cleanup =
        "trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf \"${work:-/nonexistent}\"' EXIT\n";
    let script = format!("{cleanup}{}", blocks.join("\n"));
    let output = Command::new("timeout")
        .args(["--signal=KILL", "900", "bash", "-euo", "pipefail", "-c"])
        .arg(&script)
        .current_dir(root)
        .env("TICKPIPE_STATE_DIR", appliance.dir())
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let said = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "the workshop failed:\n{said}");
    eprintln!("{said}");
}
