//! Any bytes as a CSV file: reading never panics, every refused line has a reason, every
//! accepted line passes the checks and survives the message round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickpipe::ingest::csv_file::{CsvFile, Line};
use tickpipe::tick::Tick;

fuzz_target!(|data: &[u8]| {
    let input = Box::new(std::io::Cursor::new(data.to_vec()));
    let Ok(mut file) = CsvFile::from_reader("fuzz.csv", "FUZZ", input, chrono_tz::Asia::Kolkata) else {
        return;
    };
    while let Some(line) = file.next_line() {
        match line {
            Line::Tick(tick) => {
                assert_eq!(tick.validate(), Ok(()));
                assert_eq!(Tick::from_json(&tick.to_json(), chrono_tz::UTC).as_ref(), Ok(&tick));
            }
            Line::Reject(reject) => {
                assert!(!reject.reason.is_empty());
                assert!(reject.source.starts_with("fuzz.csv:"));
            }
        }
    }
});
