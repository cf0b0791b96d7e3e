//! Just enough X.509 to tell an administrator which certificate a server
//! presented: subject, issuer, validity and subject alternative names, read
//! from the DER without any further dependency. Nothing here decides trust;
//! rustls and webpki do that.

use super::tls::{fingerprint, format_fingerprint};

/// What `cyrsync check` shows of a server certificate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CertificateSummary {
    /// The subject, e.g. `CN=replica.example.org, O=Example`.
    pub subject: String,
    /// The issuer, in the same form.
    pub issuer: String,
    /// Start of validity, `YYYY-MM-DD HH:MM:SS UTC`.
    pub not_before: Option<String>,
    /// End of validity, in the same form.
    pub not_after: Option<String>,
    /// DNS names and IP addresses of the subjectAltName extension.
    pub names: Vec<String>,
    /// SHA-256 of the DER certificate, `AB:CD:…` as `cyrsync_tls_fingerprint`
    /// accepts it and `openssl x509 -fingerprint -sha256` prints it.
    pub sha256: String,
    /// Subject and issuer are the same name.
    pub self_signed: bool,
}

/// Reads what it can of `der`; fields that cannot be parsed are shown as
/// `(unreadable)` rather than failing, since this only informs.
pub fn summarize(der: &[u8]) -> CertificateSummary {
    let sha256 = format_fingerprint(&fingerprint(der));
    match parse(der) {
        Some(p) => CertificateSummary {
            self_signed: p.subject_raw == p.issuer_raw,
            subject: p.subject,
            issuer: p.issuer,
            not_before: p.not_before,
            not_after: p.not_after,
            names: p.names,
            sha256,
        },
        None => CertificateSummary {
            subject: "(unreadable)".into(),
            issuer: "(unreadable)".into(),
            not_before: None,
            not_after: None,
            names: Vec::new(),
            sha256,
            self_signed: false,
        },
    }
}

struct Parsed<'a> {
    subject: String,
    issuer: String,
    subject_raw: &'a [u8],
    issuer_raw: &'a [u8],
    not_before: Option<String>,
    not_after: Option<String>,
    names: Vec<String>,
}

/// One DER element: tag and contents.
struct Tlv<'a> {
    tag: u8,
    body: &'a [u8],
}

/// Reads DER elements one after the other.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn next(&mut self) -> Option<Tlv<'a>> {
        let (&tag, rest) = self.0.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        let (body, rest) = rest.split_at(len);
        self.0 = rest;
        Some(Tlv { tag, body })
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;

fn parse(der: &[u8]) -> Option<Parsed<'_>> {
    let cert = Reader(der).next().filter(|t| t.tag == SEQUENCE)?;
    let tbs = Reader(cert.body).next().filter(|t| t.tag == SEQUENCE)?;
    let mut r = Reader(tbs.body);
    // [0] EXPLICIT version (absent in v1), then the serial number.
    if r.next()?.tag == 0xa0 {
        r.next()?;
    }
    let _signature = r.next().filter(|t| t.tag == SEQUENCE)?;
    let issuer = r.next().filter(|t| t.tag == SEQUENCE)?;
    let validity = r.next().filter(|t| t.tag == SEQUENCE)?;
    let subject = r.next().filter(|t| t.tag == SEQUENCE)?;
    let _spki = r.next().filter(|t| t.tag == SEQUENCE)?;
    let mut names = Vec::new();
    while let Some(t) = r.next() {
        if t.tag == 0xa3 {
            names = subject_alt_names(t.body).unwrap_or_default();
        }
    }
    let mut v = Reader(validity.body);
    let not_before = v.next().and_then(|t| time(&t));
    let not_after = v.next().and_then(|t| time(&t));
    Some(Parsed {
        subject: name(subject.body),
        issuer: name(issuer.body),
        subject_raw: subject.body,
        issuer_raw: issuer.body,
        not_before,
        not_after,
        names,
    })
}

/// An RDNSequence as `CN=…, O=…`, in the certificate's order.
fn name(body: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut rdns = Reader(body);
    while let Some(set) = rdns.next() {
        if set.tag != SET {
            break;
        }
        let mut atvs = Reader(set.body);
        while let Some(atv) = atvs.next() {
            let mut f = Reader(atv.body);
            let (Some(oid), Some(value)) = (f.next(), f.next()) else {
                continue;
            };
            if oid.tag != OID {
                continue;
            }
            parts.push(format!(
                "{}={}",
                attribute_name(oid.body),
                string_value(&value)
            ));
        }
    }
    if parts.is_empty() {
        "(empty)".into()
    } else {
        parts.join(", ")
    }
}

fn attribute_name(oid: &[u8]) -> String {
    match oid {
        [0x55, 0x04, 0x03] => "CN".into(),
        [0x55, 0x04, 0x05] => "serialNumber".into(),
        [0x55, 0x04, 0x06] => "C".into(),
        [0x55, 0x04, 0x07] => "L".into(),
        [0x55, 0x04, 0x08] => "ST".into(),
        [0x55, 0x04, 0x0a] => "O".into(),
        [0x55, 0x04, 0x0b] => "OU".into(),
        [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01] => "emailAddress".into(),
        _ => oid_text(oid),
    }
}

/// Dotted form of an OID.
fn oid_text(oid: &[u8]) -> String {
    let Some((&first, rest)) = oid.split_first() else {
        return "?".into();
    };
    let mut arcs = vec![u64::from(first / 40), u64::from(first % 40)];
    let mut acc = 0u64;
    for &b in rest {
        acc = (acc << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            arcs.push(acc);
            acc = 0;
        }
    }
    arcs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

fn string_value(t: &Tlv<'_>) -> String {
    match t.tag {
        // BMPString: UTF-16 big endian.
        0x1e => {
            let units: Vec<u16> = t
                .body
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        _ => String::from_utf8_lossy(t.body).into_owned(),
    }
}

fn time(t: &Tlv<'_>) -> Option<String> {
    let s = std::str::from_utf8(t.body).ok()?;
    let s = s.strip_suffix('Z')?;
    let full = match t.tag {
        // UTCTime: years 50–99 are 19xx (RFC 5280 §4.1.2.5.1).
        0x17 if s.len() == 12 => {
            let yy: u32 = s.get(..2)?.parse().ok()?;
            format!("{}{s}", if yy >= 50 { "19" } else { "20" })
        }
        0x18 if s.len() == 14 => s.to_string(),
        _ => return None,
    };
    if !full.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!(
        "{}-{}-{} {}:{}:{} UTC",
        &full[..4],
        &full[4..6],
        &full[6..8],
        &full[8..10],
        &full[10..12],
        &full[12..14]
    ))
}

/// DNS names and IP addresses of the subjectAltName extension in `[3]`.
fn subject_alt_names(explicit: &[u8]) -> Option<Vec<String>> {
    let exts = Reader(explicit).next().filter(|t| t.tag == SEQUENCE)?;
    let mut r = Reader(exts.body);
    while let Some(ext) = r.next() {
        let mut f = Reader(ext.body);
        let oid = f.next()?;
        if oid.tag != OID || oid.body != [0x55, 0x1d, 0x11] {
            continue;
        }
        let mut value = f.next()?;
        if value.tag == 0x01 {
            // critical BOOLEAN
            value = f.next()?;
        }
        let seq = Reader(value.body).next().filter(|t| t.tag == SEQUENCE)?;
        let mut names = Vec::new();
        let mut g = Reader(seq.body);
        while !g.is_empty() {
            let n = g.next()?;
            match n.tag {
                0x82 => names.push(format!("DNS:{}", String::from_utf8_lossy(n.body))),
                0x87 => match n.body.len() {
                    4 => names.push(format!(
                        "IP:{}",
                        std::net::Ipv4Addr::new(n.body[0], n.body[1], n.body[2], n.body[3])
                    )),
                    16 => {
                        let mut b = [0u8; 16];
                        b.copy_from_slice(n.body);
                        names.push(format!("IP:{}", std::net::Ipv6Addr::from(b)));
                    }
                    _ => {}
                },
                _ => {}
            }
        }
        return Some(names);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    /// `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj
    /// "/C=JP/O=cyrsync test/CN=replica.test" -addext
    /// "subjectAltName=IP:127.0.0.1,DNS:replica.test" -days 3650 -keyout
    /// /dev/null`: the key was never kept.
    const CERT: &str = "\
MIIB6zCCAZCgAwIBAgIUL8fzBco64tY9GexBWMpKQK0M564wCgYIKoZIzj0EAwIw
OzELMAkGA1UEBhMCSlAxFTATBgNVBAoMDGN5cnN5bmMgdGVzdDEVMBMGA1UEAwwM
cmVwbGljYS50ZXN0MB4XDTI2MTIwNDA2MDQ1OVoXDTM2MTIwMTA2MDQ1OVowOzEL
MAkGA1UEBhMCSlAxFTATBgNVBAoMDGN5cnN5bmMgdGVzdDEVMBMGA1UEAwwMcmVw
bGljYS50ZXN0MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEeGWQmJqyZckXNPka
znZb7urssSo3MDJU/RqU1q+ovIL4qBYmple+kCqUTREOxnSQKIjTpxC46+T0Xey9
WVC0i6NyMHAwHQYDVR0OBBYEFCRIOcDn4uIij7gW3EiaRAC3jYidMB8GA1UdIwQY
MBaAFCRIOcDn4uIij7gW3EiaRAC3jYidMA8GA1UdEwEB/wQFMAMBAf8wHQYDVR0R
BBYwFIcEfwAAAYIMcmVwbGljYS50ZXN0MAoGCCqGSM49BAMCA0kAMEYCIQCYqmgW
MzGWBgIhULauumbiJFBUPN2oaCjfYiuXfLcaOwIhAPz0DsK2oWCAxCio3i0I+9PU
ej9nXzjJ3RdadDsALs0x";

    fn der() -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(CERT.replace('\n', ""))
            .unwrap()
    }

    #[test]
    fn reads_what_openssl_shows() {
        let s = summarize(&der());
        assert_eq!(s.subject, "C=JP, O=cyrsync test, CN=replica.test");
        assert_eq!(s.issuer, s.subject);
        assert!(s.self_signed);
        assert_eq!(s.not_before.as_deref(), Some("2026-12-04 06:04:59 UTC"));
        assert_eq!(s.not_after.as_deref(), Some("2036-12-01 06:04:59 UTC"));
        assert_eq!(s.names, ["IP:127.0.0.1", "DNS:replica.test"]);
        assert_eq!(
            s.sha256,
            "3B:23:E5:F2:8E:BB:DF:39:89:49:E9:35:A9:C7:E6:87:55:2B:75:07:83:42:C4:71:E8:15:67:EC:BC:52:CF:AC"
        );
    }

    #[test]
    fn garbage_is_unreadable_but_fingerprinted() {
        let s = summarize(b"not a certificate");
        assert_eq!(s.subject, "(unreadable)");
        assert_eq!(s.sha256.len(), 95);
        // A truncated certificate must not panic either.
        let der = der();
        for cut in 0..der.len() {
            let _ = summarize(&der[..cut]);
        }
    }

    #[test]
    fn times_and_oids() {
        let t = Tlv {
            tag: 0x17,
            body: b"261204061844Z",
        };
        assert_eq!(time(&t).as_deref(), Some("2026-12-04 06:18:44 UTC"));
        let t = Tlv {
            tag: 0x18,
            body: b"20501231235959Z",
        };
        assert_eq!(time(&t).as_deref(), Some("2050-12-31 23:59:59 UTC"));
        assert_eq!(oid_text(&[0x55, 0x1d, 0x11]), "2.5.29.17");
        assert_eq!(
            oid_text(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d]),
            "1.2.840.113549"
        );
    }
}
