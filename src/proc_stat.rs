//! What Linux's `/proc/<pid>/stat` says about a process, for the pieces that need it (the
//! processors' leases tell a live member from a reused pid; the bench counts CPU).

/// Field `n` (1-based, as `man 5 proc` numbers them; 3 or later) of `/proc/<pid>/stat`.
pub fn field(pid: u32, n: usize) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name
        .split_whitespace()
        .nth(n.checked_sub(3)?)?
        .parse()
        .ok()
}

/// A process's start time in clock ticks since boot (field 22).
pub fn start_ticks(pid: u32) -> Option<u64> {
    field(pid, 22)
}

/// User + system CPU seconds the process has used so far (fields 14 and 15).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let ticks = field(pid, 14)? + field(pid, 15)?;
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    Some(ticks as f64 / per_second as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_start_and_cpu_time_and_a_vanished_pid_has_neither() {
        let me = std::process::id();
        assert!(start_ticks(me).is_some_and(|t| t > 0));
        // Field 1 (the pid) and 2 (the name) are not numbers after the name: not offered.
        assert_eq!(field(me, 2), None);
        // Burn a little CPU so the count is above zero.
        let spin = std::time::Instant::now();
        while spin.elapsed() < std::time::Duration::from_millis(100) {
            std::hint::black_box(spin.elapsed());
        }
        assert!(cpu_seconds(me).is_some_and(|s| s > 0.0));
        assert_eq!(start_ticks(u32::MAX >> 1), None);
    }
}
