//! Where a replica or the master listens: `sync_host` and `sync_port` as Cyrus's
//! `backend_connect` reads them (imap/backend.c).

use std::fmt;
use std::path::PathBuf;

/// A host to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A DNS name or an IP address (IPv6 without brackets).
    Name(String),
    /// A Unix-domain socket path (`sync_host` starting with `/`).
    Unix(PathBuf),
}

/// A replication peer: host, optional fixed port and Cyrus's `/tls`, `/noauth`
/// options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The host.
    pub host: Host,
    /// A fixed port; `None` means: IMAP 143 first (when trying IMAP), then csync 2005.
    pub port: Option<u16>,
    /// `host:port/tls`: TLS is required.
    pub require_tls: bool,
    /// `host:port/noauth`: do not authenticate.
    pub noauth: bool,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.host, self.port) {
            (Host::Unix(p), _) => write!(f, "{}", p.display())?,
            (Host::Name(h), Some(port)) if h.contains(':') => write!(f, "[{h}]:{port}")?,
            (Host::Name(h), Some(port)) => write!(f, "{h}:{port}")?,
            (Host::Name(h), None) => write!(f, "{h}")?,
        }
        if self.require_tls {
            f.write_str("/tls")?;
        }
        if self.noauth {
            f.write_str("/noauth")?;
        }
        Ok(())
    }
}

/// Well-known replication ports.
pub const IMAP_PORT: u16 = 143;
/// The csync (sync_server) port.
pub const CSYNC_PORT: u16 = 2005;

/// Parses a `sync_host` value. `Err` carries a sentence on what is wrong.
pub fn parse_host(text: &str) -> Result<Endpoint, String> {
    if text.starts_with('/') {
        return Ok(Endpoint {
            host: Host::Unix(PathBuf::from(text)),
            port: None,
            require_tls: false,
            noauth: false,
        });
    }
    // `[v6addr]:port` is our extension; Cyrus splits at the first colon, which
    // cannot express an IPv6 literal with a port.
    let (host, rest) = if let Some(inner) = text.strip_prefix('[') {
        let (addr, after) = inner
            .split_once(']')
            .ok_or_else(|| "an IPv6 address in '[' has no closing ']'".to_string())?;
        match after {
            "" => (addr, None),
            _ => (
                addr,
                Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| "expected ':' after ']'".to_string())?,
                ),
            ),
        }
    } else if text.matches(':').count() > 1 {
        // A bare IPv6 address: no port possible.
        (text, None)
    } else {
        match text.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        return Err("the host name is empty or contains white space".into());
    }
    let mut endpoint = Endpoint {
        host: Host::Name(host.to_string()),
        port: None,
        require_tls: false,
        noauth: false,
    };
    if let Some(rest) = rest {
        let mut parts = rest.split('/');
        let service = parts.next().unwrap_or_default();
        endpoint.port = Some(parse_port(service)?);
        for option in parts {
            match option {
                "tls" => endpoint.require_tls = true,
                "noauth" => endpoint.noauth = true,
                other => {
                    return Err(format!(
                        "unknown option '/{other}' (Cyrus knows /tls and /noauth)"
                    ));
                }
            }
        }
    }
    Ok(endpoint)
}

/// Parses a port number or a service name (`csync`, `imap`, or a name from
/// /etc/services).
pub fn parse_port(text: &str) -> Result<u16, String> {
    if text.chars().all(|c| c.is_ascii_digit()) && !text.is_empty() {
        return match text.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("'{text}' is not a port number (1-65535)")),
            Ok(p) => Ok(p),
        };
    }
    match text {
        "csync" => return Ok(CSYNC_PORT),
        "imap" => return Ok(IMAP_PORT),
        _ => {}
    }
    services_lookup(text).ok_or_else(|| {
        format!("'{text}' is neither a port number nor a tcp service in /etc/services")
    })
}

fn services_lookup(name: &str) -> Option<u16> {
    let services = std::fs::read_to_string("/etc/services").ok()?;
    services.lines().find_map(|line| {
        let line = line.split('#').next()?;
        let mut fields = line.split_whitespace();
        let service = fields.next()?;
        let (port, proto) = fields.next()?.split_once('/')?;
        let aliases: Vec<&str> = fields.collect();
        (proto == "tcp" && (service == name || aliases.contains(&name)))
            .then(|| port.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_forms() {
        let e = parse_host("replica.example").unwrap();
        assert_eq!(e.host, Host::Name("replica.example".into()));
        assert_eq!(e.port, None);
        let e = parse_host("replica.example:2005/tls/noauth").unwrap();
        assert_eq!((e.port, e.require_tls, e.noauth), (Some(2005), true, true));
        assert_eq!(e.to_string(), "replica.example:2005/tls/noauth");
        let e = parse_host("[::1]:22005").unwrap();
        assert_eq!(
            (e.host.clone(), e.port),
            (Host::Name("::1".into()), Some(22005))
        );
        assert_eq!(e.to_string(), "[::1]:22005");
        assert_eq!(parse_host("fe80::1").unwrap().port, None);
        assert_eq!(parse_host("r:csync").unwrap().port, Some(2005));
        assert!(matches!(
            parse_host("/var/run/sync").unwrap().host,
            Host::Unix(_)
        ));
        for bad in [
            "",
            "r:0",
            "r:99999",
            "r:2005/ssl",
            "[::1",
            "a b",
            "r:nosuchservice-xyz",
        ] {
            assert!(parse_host(bad).is_err(), "{bad}");
        }
    }
}
