//! Choosing a mechanism from what the server offers.

use super::{Credentials, Mechanism, Result, SaslError};

/// What the configuration allows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// `force_sasl_client_mech`: one or more mechanism names. As in Cyrus
    /// (`imap/backend.c` `intersect_mechlists`), only these are tried, among those
    /// the server offers; the strongest of them wins.
    pub forced: Option<String>,
    /// `cyrsync_allow_plaintext`: allow PLAIN and LOGIN without TLS.
    pub allow_plaintext: bool,
}

/// The mechanisms of a csync banner line `* SASL PLAIN LOGIN …`, or `None` for
/// another line.
pub fn mechanisms_from_csync_banner(line: &str) -> Option<Vec<String>> {
    let mut words = line.split_ascii_whitespace();
    if words.next() != Some("*") || !words.next()?.eq_ignore_ascii_case("SASL") {
        return None;
    }
    Some(words.map(str::to_owned).collect())
}

/// The `AUTH=…` mechanisms of an IMAP `CAPABILITY` response or `[CAPABILITY …]` code.
pub fn mechanisms_from_capabilities(capabilities: &str) -> Vec<String> {
    capabilities
        .split(|c: char| c.is_ascii_whitespace() || c == '[' || c == ']')
        .filter_map(|word| {
            let (name, value) = word.split_once('=')?;
            (name.eq_ignore_ascii_case("AUTH") && !value.is_empty()).then(|| value.to_owned())
        })
        .collect()
}

fn offers(offered: &[String], mechanism: Mechanism) -> bool {
    offered
        .iter()
        .any(|o| o.eq_ignore_ascii_case(mechanism.name()))
}

/// Picks the mechanism for a connection: the strongest one
/// ([`Mechanism::PREFERENCE`]) that the server offers and the policy allows.
///
/// PLAIN and LOGIN are allowed only when `tls` is true or
/// [`Policy::allow_plaintext`] is set; CRAM-MD5 and LOGIN are skipped when an
/// authzid is configured. `force_sasl_client_mech` restricts the choice and it is an
/// error when none of the forced mechanisms can be used. Errors list what was offered
/// and what was allowed, and name the imapd.conf key to change.
pub fn select(
    offered: &[String],
    tls: bool,
    credentials: &Credentials,
    policy: &Policy,
) -> Result<Mechanism> {
    let clear_ok = tls || policy.allow_plaintext;
    let authzid = credentials.authzid.is_some();
    let allowed: Vec<Mechanism> = Mechanism::PREFERENCE
        .into_iter()
        .filter(|m| clear_ok || !m.sends_password_in_clear())
        .filter(|m| !authzid || m.supports_authzid())
        .collect();
    let clear_offered = [Mechanism::Plain, Mechanism::Login]
        .into_iter()
        .any(|m| offers(offered, m));
    let plaintext_hint = "PLAIN and LOGIN send the password in clear: use TLS to the replica, \
                          or set `cyrsync_allow_plaintext: yes` in imapd.conf";

    if let Some(forced) = policy.forced.as_deref().filter(|f| !f.trim().is_empty()) {
        // Cyrus splits force_sasl_client_mech on anything but [A-Za-z0-9_-].
        let names: Vec<&str> = forced
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .filter(|n| !n.is_empty())
            .collect();
        let known: Vec<Mechanism> = names
            .iter()
            .filter_map(|n| Mechanism::from_name(n))
            .collect();
        let usable_forced: Vec<Mechanism> = allowed
            .iter()
            .copied()
            .filter(|m| known.contains(m))
            .collect();
        if let Some(m) = usable_forced.iter().copied().find(|m| offers(offered, *m)) {
            return Ok(m);
        }
        let unknown: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| Mechanism::from_name(n).is_none())
            .collect();
        let blocked_clear = known
            .iter()
            .any(|m| m.sends_password_in_clear() && offers(offered, *m) && !clear_ok);
        let blocked_authzid = known
            .iter()
            .any(|m| !m.supports_authzid() && offers(offered, *m) && authzid);
        let hint = if blocked_clear {
            plaintext_hint.to_owned()
        } else if blocked_authzid {
            "CRAM-MD5 and LOGIN cannot carry an authzid: change `force_sasl_client_mech` in \
             imapd.conf"
                .to_owned()
        } else if !unknown.is_empty() && known.is_empty() {
            format!(
                "cyrsync does not implement {}; it supports {}: change `force_sasl_client_mech` \
                 in imapd.conf",
                unknown.join(" "),
                mech_names(&Mechanism::PREFERENCE)
            )
        } else {
            "change or remove `force_sasl_client_mech` in imapd.conf, or add the mechanism to \
             `sasl_mech_list` in the replica's imapd.conf"
                .to_owned()
        };
        return Err(SaslError::ForcedNotUsable {
            forced: forced.to_owned(),
            offered: offered.to_vec(),
            usable_forced,
            hint,
        });
    }

    if let Some(m) = allowed.iter().copied().find(|m| offers(offered, *m)) {
        return Ok(m);
    }
    let hint = if clear_offered && !clear_ok {
        format!(
            "{plaintext_hint}, or add SCRAM-SHA-256 to `sasl_mech_list` in the replica's \
             imapd.conf"
        )
    } else if authzid
        && [Mechanism::CramMd5, Mechanism::Login]
            .into_iter()
            .any(|m| offers(offered, m))
    {
        "CRAM-MD5 and LOGIN cannot carry an authzid: add SCRAM-SHA-256 to `sasl_mech_list` \
         in the replica's imapd.conf"
            .to_owned()
    } else {
        "add SCRAM-SHA-256 to `sasl_mech_list` in the replica's imapd.conf (with the SASL \
         SCRAM plugin installed)"
            .to_owned()
    };
    Err(SaslError::NoMechanism {
        offered: offered.to_vec(),
        allowed,
        tls,
        hint,
    })
}

fn mech_names(mechs: &[Mechanism]) -> String {
    mechs.iter().map(|m| m.name()).collect::<Vec<_>>().join(" ")
}
