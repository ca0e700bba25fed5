//! The lock Pulumi's DIY backends (`file://`, `s3://`, ...) take around every update, and
//! what the tool can say about it.
//!
//! Pulumi writes one JSON object per lock at
//! `<backend>/.pulumi/locks/<org>/<project>/<stack>/<uuid>.json` (`organization` is the
//! org of every DIY stack), holding `pid`, `username`, `hostname` and `timestamp` (Go's
//! `time.Time`, RFC 3339 with nanoseconds and the writer's UTC offset); `pulumi cancel`
//! deletes every file in that folder. Read from Pulumi's source, `pkg/backend/diy/lock.go`
//! and `CancelCurrentUpdate` in `pkg/backend/diy/backend.go` (v3.259.0).
//!
//! The tool reads the files of a `file://` backend itself. It cannot read an S3 bucket (no
//! AWS SDK in this crate, and none for S3 in the tool), so for those it says where the lock
//! lives and the commands that show and release it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use camino::{Utf8Path, Utf8PathBuf};

use crate::settings::Backend;

/// One lock file of a stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockInfo {
    pub path: Utf8PathBuf,
    pub username: Option<String>,
    pub hostname: Option<String>,
    pub pid: Option<i64>,
    /// The `timestamp` as written.
    pub timestamp: Option<String>,
    /// The same as seconds since the Unix epoch, when it parses.
    pub since: Option<u64>,
}

impl LockInfo {
    /// Reads one lock file; a file that is not Pulumi's JSON still counts as a lock.
    pub fn read(path: &Utf8Path) -> LockInfo {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let s = |k: &str| v[k].as_str().filter(|s| !s.is_empty()).map(str::to_owned);
        let timestamp = s("timestamp");
        LockInfo {
            path: path.to_owned(),
            username: s("username"),
            hostname: s("hostname"),
            pid: v["pid"].as_i64(),
            since: timestamp.as_deref().and_then(parse_rfc3339),
            timestamp,
        }
    }

    /// `ci@runner (pid 7)`.
    pub fn owner(&self) -> String {
        let who = format!("{}@{}", self.username.as_deref().unwrap_or("?"), self.hostname.as_deref().unwrap_or("?"));
        match self.pid {
            Some(p) => format!("{who} (pid {p})"),
            None => who,
        }
    }

    /// How long ago the lock was taken, at `now` (seconds since the epoch).
    pub fn age_at(&self, now: u64) -> Option<Duration> {
        self.since.map(|s| Duration::from_secs(now.saturating_sub(s)))
    }

    /// `ci@runner (pid 7) since 2026-01-01T00:00:00Z, 3h 12m ago`.
    pub fn describe_at(&self, now: u64) -> String {
        let mut out = self.owner();
        if let Some(t) = &self.timestamp {
            out.push_str(&format!(" since {t}"));
        }
        match self.age_at(now) {
            Some(age) => out.push_str(&format!(", {} ago", format_age(age))),
            None => out.push_str(", age unknown"),
        }
        out
    }
}

/// Seconds since the Unix epoch, now.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Every lock file of `project`/`stack` in the folder of a `file://` backend (any org).
pub fn file_locks(backend_dir: &Utf8Path, project: &str, stack: &str) -> Vec<LockInfo> {
    let locks = backend_dir.join(".pulumi/locks");
    let mut found = Vec::new();
    let mut dirs = vec![(locks, 0)];
    while let Some((dir, depth)) = dirs.pop() {
        let Ok(rd) = dir.read_dir_utf8() else {
            continue;
        };
        for entry in rd.flatten() {
            let path = entry.path().to_owned();
            if path.is_dir() && depth < 4 {
                dirs.push((path, depth + 1));
            } else if path.is_file()
                && path.parent().and_then(Utf8Path::file_name) == Some(stack)
                && path.parent().and_then(Utf8Path::parent).and_then(Utf8Path::file_name) == Some(project)
            {
                found.push(LockInfo::read(&path));
            }
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

/// Where a DIY backend keeps the locks of `project`/`stack`, as a URL (credentials
/// hidden): `s3://bucket/.pulumi/locks/organization/tradai-foundation/dev/`.
pub fn lock_folder(backend: &Backend, project: &str, stack: &str) -> String {
    let shown = backend.shown_url();
    let base = shown.split('?').next().unwrap_or(&shown).trim_end_matches('/');
    format!("{base}/.pulumi/locks/organization/{project}/{stack}/")
}

/// Parses Go's JSON form of `time.Time` (RFC 3339, optional fraction, `Z` or `±HH:MM`)
/// into seconds since the epoch.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let t = text.trim();
    let (date, rest) = t.split_once(['T', 't', ' '])?;
    let mut d = date.split('-');
    let (y, m, day): (i64, i64, i64) = (d.next()?.parse().ok()?, d.next()?.parse().ok()?, d.next()?.parse().ok()?);
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) || rest.len() < 8 {
        return None;
    }
    let (clock, zone) = rest.split_at(8);
    let mut c = clock.split(':');
    let (hh, mm, ss): (i64, i64, i64) = (c.next()?.parse().ok()?, c.next()?.parse().ok()?, c.next()?.parse().ok()?);
    let zone = match zone.strip_prefix('.') {
        Some(frac) => &frac[frac.find(|ch: char| !ch.is_ascii_digit()).unwrap_or(frac.len())..],
        None => zone,
    };
    let offset = match zone {
        "Z" | "z" => 0,
        z if z.len() == 6 && (z.starts_with('+') || z.starts_with('-')) => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let oh: i64 = z[1..3].parse().ok()?;
            let om: i64 = z[4..6].parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
        _ => return None,
    };
    let secs = days_from_civil(y, m, day) * 86_400 + hh * 3600 + mm * 60 + ss - offset;
    u64::try_from(secs).ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Reads an age such as `15m`, `90s`, `2h`, `1h30m` or `0` (a bare number is minutes).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || format!("`{text}` is not a duration; write it like 15m, 90s, 2h or 1h30m");
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(minutes) = t.parse::<u64>() {
        return Ok(Duration::from_secs(minutes * 60));
    }
    let mut total = 0u64;
    let mut number = String::new();
    for ch in t.chars() {
        if ch.is_ascii_digit() {
            number.push(ch);
            continue;
        }
        let unit = match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = number.parse().map_err(|_| bad())?;
        total += n * unit;
        number.clear();
    }
    if !number.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}

/// `3h 12m`, `4m 05s`, `15m`, `12s` (a zero second part is left out).
pub fn format_age(age: Duration) -> String {
    let s = age.as_secs();
    let (big, big_unit, small, small_unit) = match s {
        0..60 => return format!("{s}s"),
        60..3600 => (s / 60, "m", s % 60, "s"),
        3600..86_400 => (s / 3600, "h", (s % 3600) / 60, "m"),
        _ => (s / 86_400, "d", (s % 86_400) / 3600, "h"),
    };
    if small == 0 { format!("{big}{big_unit}") } else { format!("{big}{big_unit} {small:02}{small_unit}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::BackendSource;

    #[test]
    fn go_timestamps_parse_with_fractions_and_offsets() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2024-02-29T23:59:59Z"), Some(1_709_251_199));
        assert_eq!(parse_rfc3339("2024-02-29T23:59:59.123456789Z"), Some(1_709_251_199));
        assert_eq!(parse_rfc3339("2024-03-01T01:59:59.5+02:00"), Some(1_709_251_199));
        assert_eq!(parse_rfc3339("2024-02-29T18:59:59-05:00"), Some(1_709_251_199));
        assert_eq!(parse_rfc3339("1709251199"), None);
        assert_eq!(parse_rfc3339("2024-13-01T00:00:00Z"), None);
    }

    #[test]
    fn durations_read_and_print() {
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("20").unwrap(), Duration::from_secs(1200));
        assert!(parse_duration("15 minutes").unwrap_err().contains("like 15m"));
        assert!(parse_duration("m").is_err());
        assert_eq!(format_age(Duration::from_secs(11_520)), "3h 12m");
        assert_eq!(format_age(Duration::from_secs(245)), "4m 05s");
        assert_eq!(format_age(Duration::from_secs(12)), "12s");
        assert_eq!(format_age(Duration::from_secs(900)), "15m");
        assert_eq!(format_age(Duration::from_secs(2 * 86_400 + 3600)), "2d 01h");
    }

    #[test]
    fn file_locks_read_the_diy_layout_with_owner_and_age() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::from_path_buf(tmp.path().to_path_buf()).unwrap();
        assert!(file_locks(&root, "tradai-foundation", "dev").is_empty());
        let dir = root.join(".pulumi/locks/organization/tradai-foundation/dev");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("0b6f2a8e-4d4b-4a8e-9d43-1f3c7f1b2a11.json"),
            r#"{"pid":42,"username":"ci","hostname":"runner","timestamp":"2026-01-01T00:00:00.5+00:00"}"#,
        )
        .unwrap();
        let locks = file_locks(&root, "tradai-foundation", "dev");
        assert_eq!(locks.len(), 1);
        let since = parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        assert_eq!(locks[0].describe_at(since + 11_520), "ci@runner (pid 42) since 2026-01-01T00:00:00.5+00:00, 3h 12m ago");
        assert!(file_locks(&root, "tradai-foundation", "prod").is_empty());
        assert!(file_locks(&root, "tradai-compute", "dev").is_empty());
        // Not Pulumi's JSON: still a lock, of unknown owner and age.
        std::fs::write(dir.join("x.json"), "garbage").unwrap();
        let locks = file_locks(&root, "tradai-foundation", "dev");
        assert_eq!(locks.len(), 2);
        assert_eq!(locks[1].describe_at(0), "?@?, age unknown");
    }

    #[test]
    fn lock_folder_names_the_bucket_path_without_credentials() {
        let b = Backend { url: "s3://tradai-state/team?region=eu-central-1".into(), source: BackendSource::S3Var };
        assert_eq!(lock_folder(&b, "tradai-edge", "prod"), "s3://tradai-state/team/.pulumi/locks/organization/tradai-edge/prod/");
        let b = Backend { url: "postgres://u:p@db/x".into(), source: BackendSource::PulumiVar };
        assert!(!lock_folder(&b, "p", "dev").contains("u:p"));
    }
}
