//! How durations and sizes read on the screen and in events.

/// `1h02m`, `3m12s`, `45s`, `0.3s`.
pub fn duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "-".into();
    }
    if secs < 10.0 && secs.fract() != 0.0 {
        return format!("{secs:.1}s");
    }
    let s = secs as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// `1.2 MB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_read_naturally() {
        assert_eq!(duration(0.0), "0s");
        assert_eq!(duration(2.44), "2.4s");
        assert_eq!(duration(59.0), "59s");
        assert_eq!(duration(95.0), "1m35s");
        assert_eq!(duration(3725.0), "1h02m");
        assert_eq!(duration(90_000.0), "1d01h");
        assert_eq!(duration(-1.0), "-");
        assert_eq!(duration(f64::NAN), "-");
        assert_eq!(bytes(999), "999 B");
        assert_eq!(bytes(412_000_000), "412.0 MB");
        assert_eq!(bytes(u64::MAX), "18446744.1 TB");
    }
}
