//! Value syntaxes of imapd.conf, parsed the way Cyrus parses them.

use std::time::Duration;

/// Parses a Cyrus duration (`config_parseduration` in lib/libconfig.c): digits
/// followed by `d`, `h`, `m` or `s`, repeated (`1d2h3m4s`); a trailing bare number
/// takes `default_unit`; a leading `-` negates. Returns whole seconds.
pub fn parse_duration(text: &str, default_unit: char) -> Option<i64> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let mut total: i64 = 0;
    let mut accum: i64 = 0;
    let mut saw_digit = false;
    let trailing_unit = body
        .chars()
        .last()
        .filter(char::is_ascii_digit)
        .map(|_| default_unit);
    for c in body.chars().chain(trailing_unit) {
        if let Some(d) = c.to_digit(10) {
            accum = accum.checked_mul(10)?.checked_add(i64::from(d))?;
            saw_digit = true;
            continue;
        }
        if !saw_digit {
            return None;
        }
        saw_digit = false;
        let unit: i64 = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return None,
        };
        total = total.checked_add(accum.checked_mul(unit)?)?;
        accum = 0;
    }
    Some(if negative { -total } else { total })
}

/// Parses a switch as Cyrus does (`config_parse_switch`): only the first letter
/// counts, lower case: `0`, `n…`, `of…`, `f…` are off; `1`, `y…`, `on…`, `t…` are on.
pub fn parse_switch(text: &str) -> Option<bool> {
    let b = text.as_bytes();
    match (b.first(), b.get(1)) {
        (Some(b'0' | b'n' | b'f'), _) | (Some(b'o'), Some(b'f')) => Some(false),
        (Some(b'1' | b'y' | b't'), _) | (Some(b'o'), Some(b'n')) => Some(true),
        _ => None,
    }
}

/// Reads a channel-prefixed switch the way Cyrus's `sync_get_switchconfig`
/// does: with `atoi()`, so `yes` is 0. Returns `None` for -1, which Cyrus treats as
/// "not set".
pub fn cyrus_atoi_switch(text: &str) -> Option<bool> {
    let t = text.trim_start();
    let (sign, digits) = match t.as_bytes().first() {
        Some(b'-') => (-1i64, &t[1..]),
        Some(b'+') => (1, &t[1..]),
        _ => (1, t),
    };
    let n: i64 = digits
        .bytes()
        .take_while(u8::is_ascii_digit)
        .fold(0i64, |acc, d| {
            acc.saturating_mul(10).saturating_add(i64::from(d - b'0'))
        })
        .saturating_mul(sign);
    if n == -1 { None } else { Some(n != 0) }
}

/// Parses an integer as C's `strtol(text, &end, 0)` with the whole text consumed:
/// optional sign, `0x` for hexadecimal, a leading `0` for octal.
pub fn parse_c_integer(text: &str) -> Option<i64> {
    let (negative, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) =
        if let Some(hex) = body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
            (16, hex)
        } else if body.len() > 1 && body.starts_with('0') {
            (8, &body[1..])
        } else {
            (10, body)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let n = i64::from_str_radix(digits, radix).ok()?;
    Some(if negative { -n } else { n })
}

/// Formats seconds in Cyrus duration syntax (`1h30m`), `0s` for zero.
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// Parses a SHA-256 fingerprint written as 64 hex digits, with or without `:`
/// separators (`AB:CD:…` as `openssl x509 -fingerprint -sha256` prints it).
pub fn parse_sha256_fingerprint(text: &str) -> Option<[u8; 32]> {
    let text = text.strip_prefix("sha256:").unwrap_or(text);
    let hex: String = text.chars().filter(|&c| c != ':').collect();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_cyrus() {
        assert_eq!(parse_duration("1d2h3m4s", 's'), Some(93_784));
        assert_eq!(parse_duration("30", 's'), Some(30));
        assert_eq!(parse_duration("30", 'm'), Some(1_800));
        assert_eq!(parse_duration("1h30", 's'), Some(3_630));
        assert_eq!(parse_duration("20m", 's'), Some(1_200));
        assert_eq!(parse_duration("0", 's'), Some(0));
        assert_eq!(parse_duration("-5m", 's'), Some(-300));
        assert_eq!(parse_duration("1m1m", 's'), Some(120));
        for bad in ["m", "1x", "1 m", "1.5s", "1M", "h1", "--1"] {
            assert_eq!(parse_duration(bad, 's'), None, "{bad}");
        }
        assert_eq!(parse_duration("99999999999999999999d", 's'), None);
    }

    #[test]
    fn switches_as_cyrus() {
        for on in ["1", "yes", "on", "true", "t", "y"] {
            assert_eq!(parse_switch(on), Some(true), "{on}");
        }
        for off in ["0", "no", "off", "false", "f", "n"] {
            assert_eq!(parse_switch(off), Some(false), "{off}");
        }
        // Cyrus compares the first byte case-sensitively.
        for bad in ["Yes", "TRUE", "2", "o", "enabled", ""] {
            assert_eq!(parse_switch(bad), None, "{bad}");
        }
    }

    #[test]
    fn atoi_switch_reads_yes_as_off() {
        assert_eq!(cyrus_atoi_switch("1"), Some(true));
        assert_eq!(cyrus_atoi_switch("yes"), Some(false));
        assert_eq!(cyrus_atoi_switch("0"), Some(false));
        assert_eq!(cyrus_atoi_switch("2"), Some(true));
        assert_eq!(cyrus_atoi_switch("-1"), None);
    }

    #[test]
    fn c_integers() {
        assert_eq!(parse_c_integer("8192"), Some(8192));
        assert_eq!(parse_c_integer("0x10"), Some(16));
        assert_eq!(parse_c_integer("010"), Some(8));
        assert_eq!(parse_c_integer("0"), Some(0));
        assert_eq!(parse_c_integer("-3"), Some(-3));
        for bad in ["", "12k", "0x", "09", "1 000"] {
            assert_eq!(parse_c_integer(bad), None, "{bad}");
        }
    }

    #[test]
    fn duration_formatting() {
        assert_eq!(format_duration(Duration::from_secs(1_800)), "30m");
        assert_eq!(format_duration(Duration::from_secs(93_784)), "1d2h3m4s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn fingerprints() {
        let colon = (0..32)
            .map(|i| format!("{i:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        let fp = parse_sha256_fingerprint(&colon).unwrap();
        assert_eq!(fp[31], 31);
        assert_eq!(parse_sha256_fingerprint(&colon.replace(':', "")), Some(fp));
        assert_eq!(parse_sha256_fingerprint("abcd"), None);
    }
}
