//! CPU time and RSS of processes (the server's, and this one's), from `/proc/PID/stat` and
//! `/proc/PID/status`; the parsing is split from the reading so it can be tested on strings.

/// CPU seconds of the given processes together (`None` when no PIDs are given).
pub fn procs_cpu(pids: &[u32]) -> Option<f64> {
    (!pids.is_empty()).then(|| pids.iter().filter_map(|&p| proc_cpu(p)).sum())
}

/// CPU seconds (user + system) of a process.
pub fn proc_cpu(pid: u32) -> Option<f64> {
    stat_cpu_seconds(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Resident set size of the given processes together, KiB (`None` when no PIDs are given).
pub fn procs_rss(pids: &[u32]) -> Option<u64> {
    (!pids.is_empty()).then(|| pids.iter().filter_map(|&p| proc_rss(p)).sum())
}

/// Resident set size of a process, KiB.
fn proc_rss(pid: u32) -> Option<u64> {
    status_rss_kib(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// CPU seconds (utime + stime, at 100 ticks a second) from a `/proc/PID/stat` line. The fields
/// are counted after the last `)`, since the command name may hold spaces and parentheses.
fn stat_cpu_seconds(s: &str) -> Option<f64> {
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// The `VmRSS:` figure (KiB) of a `/proc/PID/status` text.
fn status_rss_kib(s: &str) -> Option<u64> {
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches(" kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_gives_utime_plus_stime() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
        // stime ...
        let line = "4242 (zerocast) S 1 4242 4242 0 -1 4194560 1234 0 5 0 250 125 0 0 20 0 \
                    9 0 100 123456789 2048 18446744073709551615\n";
        assert_eq!(stat_cpu_seconds(line), Some(3.75));
    }

    #[test]
    fn stat_command_name_with_spaces_and_parentheses() {
        let line = "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 0 0 0\n";
        assert_eq!(stat_cpu_seconds(line), Some(0.03));
    }

    #[test]
    fn stat_line_cut_short_is_none() {
        assert_eq!(stat_cpu_seconds("7 (x) R 1 7 7 0"), None);
        assert_eq!(stat_cpu_seconds("no parenthesis"), None);
    }

    #[test]
    fn status_vmrss() {
        let status = "Name:\tzerocast\nVmPeak:\t  200000 kB\nVmRSS:\t   51234 kB\nThreads:\t3\n";
        assert_eq!(status_rss_kib(status), Some(51234));
        assert_eq!(status_rss_kib("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn this_process_has_cpu_time_and_rss() {
        let me = std::process::id();
        assert!(proc_cpu(me).is_some());
        assert!(proc_rss(me).is_some_and(|k| k > 0));
        assert_eq!(procs_cpu(&[]), None);
        assert_eq!(procs_rss(&[]), None);
        assert!(procs_rss(&[me, me]).is_some_and(|k| k > 0));
    }
}
