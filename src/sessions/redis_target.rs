//! What `sessions.redis_url` names: one Redis server, or a primary found through Redis
//! Sentinel.
//!
//! This exists so that a node keeps its session store working after Sentinel promotes a
//! replica: with a fixed `redis://` URL the store would keep knocking on the dead (or demoted)
//! primary forever. The redis crate's URL parser knows no Sentinel form, so the
//! `redis+sentinel://` form is parsed here, into a typed [`RedisTarget`], with errors that say
//! what is wrong and what a valid URL looks like. Every other URL is passed to the redis crate
//! untouched, exactly as before.
//!
//! A URL can carry a secret (`rediss://:<token>@host:6379`, `rediss://user:pass@host/0`), so
//! everything that shows one — the store's logs, its `Debug`, [`StoreError::InvalidUrl`],
//! this type's `Display` and `Debug` — shows it through [`redact_url`].

use std::fmt;

use super::StoreError;

/// The scheme of a Sentinel URL.
pub const SENTINEL_SCHEME: &str = "redis+sentinel";

/// The port of a sentinel given without one.
pub const DEFAULT_SENTINEL_PORT: u16 = 26379;

const FORM: &str = "expected redis+sentinel://host:port[,host:port...]/<master-name>[/<db>]";

/// Where the Redis session store connects. `Display` and `Debug` hide a password in the URL
/// (see [`redact_url`]).
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// A plain redis crate URL (`redis://host:port/db`, `rediss://[user]:password@host:port/db`
    /// for TLS, `unix://...`), used as is; the redis crate validates it.
    Direct(String),
    /// `redis+sentinel://host1:port1,host2:port2/<master>[/<db>]`: ask the sentinels, in
    /// order, for the current primary of `master` on every (re)connect. Plain TCP only, to the
    /// sentinels and to the primary: TLS (and a CA file) is only for a single-server
    /// `rediss://` URL.
    Sentinel {
        /// Sentinel addresses (host, port), asked in this order.
        sentinels: Vec<(String, u16)>,
        /// The name the sentinels monitor the primary under.
        master: String,
        /// Database index selected on the primary (default 0).
        db: i64,
    },
}

impl RedisTarget {
    /// Parses `url`: `redis+sentinel://...` into [`RedisTarget::Sentinel`], anything else into
    /// [`RedisTarget::Direct`]. Fails with [`StoreError::InvalidUrl`] on a malformed Sentinel
    /// URL (or another `*+sentinel` scheme).
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let invalid = |reason: String| StoreError::InvalidUrl {
            url: redact_url(url),
            reason,
        };
        let Some((scheme, rest)) = url.split_once("://") else {
            return Ok(RedisTarget::Direct(url.to_owned()));
        };
        if !scheme.eq_ignore_ascii_case(SENTINEL_SCHEME) {
            if scheme.to_ascii_lowercase().ends_with("+sentinel") {
                return Err(invalid(format!(
                    "unsupported scheme {scheme:?} (TLS and other transports to sentinels are \
                     not supported); {FORM}"
                )));
            }
            return Ok(RedisTarget::Direct(url.to_owned()));
        }
        parse_sentinel(rest).map_err(invalid)
    }
}

impl std::str::FromStr for RedisTarget {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisTarget::Direct(url) => f.write_str(&redact_url(url)),
            RedisTarget::Sentinel {
                sentinels,
                master,
                db,
            } => {
                write!(f, "{SENTINEL_SCHEME}://")?;
                for (i, (host, port)) in sentinels.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{}", HostPort(host, *port))?;
                }
                write!(f, "/{master}/{db}")
            }
        }
    }
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedisTarget::Direct(url) => f.debug_tuple("Direct").field(&redact_url(url)).finish(),
            RedisTarget::Sentinel {
                sentinels,
                master,
                db,
            } => f
                .debug_struct("Sentinel")
                .field("sentinels", sentinels)
                .field("master", master)
                .field("db", db)
                .finish(),
        }
    }
}

/// What replaces a password in [`redact_url`].
pub const REDACTED: &str = "***";

/// `url` as it may be shown in logs and errors: the password of the userinfo replaced by
/// `***` (`rediss://:***@host:6379`, `rediss://user:***@host:6379/0`; the user name stays),
/// and so are the values of `pass` / `password` query parameters (the `unix://` form). A URL
/// without credentials comes back unchanged. Unencoded `@` or `/` in the password are
/// handled as the redis crate would not (the last `@` before any `?`/`#` ends the userinfo),
/// so that even a malformed URL does not leak its secret; a string that is no URL at all but
/// has an `@` loses everything before its last `@`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return match url.rsplit_once('@') {
            Some((_, host)) => format!("{REDACTED}@{host}"),
            None => url.to_owned(),
        };
    };
    let split = rest.find(['?', '#']).unwrap_or(rest.len());
    let (head, tail) = rest.split_at(split);
    let head = match head.rsplit_once('@') {
        // `unix:///path/with@sign`: no authority, nothing to hide.
        _ if head.starts_with('/') => head.to_owned(),
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:{REDACTED}@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => head.to_owned(),
    };
    let tail = match tail.strip_prefix('?') {
        Some(query) => {
            let (query, fragment) = match query.split_once('#') {
                Some((q, f)) => (q, Some(f)),
                None => (query, None),
            };
            let query = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _))
                        if key.eq_ignore_ascii_case("pass")
                            || key.eq_ignore_ascii_case("password") =>
                    {
                        format!("{key}={REDACTED}")
                    }
                    _ => pair.to_owned(),
                })
                .collect::<Vec<_>>()
                .join("&");
            match fragment {
                Some(f) => format!("?{query}#{f}"),
                None => format!("?{query}"),
            }
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{head}{tail}")
}

/// `host:port`, with IPv6 hosts in brackets.
pub(crate) struct HostPort<'a>(pub &'a str, pub u16);

impl fmt::Display for HostPort<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.contains(':') {
            write!(f, "[{}]:{}", self.0, self.1)
        } else {
            write!(f, "{}:{}", self.0, self.1)
        }
    }
}

fn parse_sentinel(rest: &str) -> Result<RedisTarget, String> {
    if rest.contains(['?', '#']) {
        return Err(format!(
            "query parameters and fragments are not supported; {FORM}"
        ));
    }
    let Some((hosts, path)) = rest.split_once('/') else {
        return Err(format!("missing master name; {FORM}"));
    };
    if hosts.contains('@') {
        return Err(format!(
            "credentials are not supported in a sentinel URL; {FORM}"
        ));
    }
    if hosts.is_empty() {
        return Err(format!("no sentinel address; {FORM}"));
    }
    let sentinels = hosts
        .split(',')
        .map(parse_host_port)
        .collect::<Result<Vec<_>, _>>()?;
    let path = path.strip_suffix('/').unwrap_or(path);
    let mut segments = path.split('/');
    let master = segments.next().unwrap_or_default();
    if master.is_empty() {
        return Err(format!("missing master name; {FORM}"));
    }
    if master.chars().any(char::is_whitespace) {
        return Err(format!("master name {master:?} contains whitespace"));
    }
    let db = match segments.next() {
        None => 0,
        Some(db) => db
            .parse::<i64>()
            .ok()
            .filter(|db| *db >= 0)
            .ok_or_else(|| format!("database {db:?} is not a non-negative integer; {FORM}"))?,
    };
    if let Some(extra) = segments.next() {
        return Err(format!(
            "unexpected path segment {extra:?} after the database; {FORM}"
        ));
    }
    Ok(RedisTarget::Sentinel {
        sentinels,
        master: master.to_owned(),
        db,
    })
}

fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    if s.is_empty() {
        return Err(format!("empty sentinel address in the host list; {FORM}"));
    }
    let (host, port) = if let Some(bracketed) = s.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return Err(format!("sentinel address {s:?} lacks the closing ']'"));
        };
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return Err(format!("unexpected {after:?} after ']' in {s:?}")),
            },
        }
    } else {
        match s.split_once(':') {
            None => (s, None),
            Some((_, port)) if port.contains(':') => {
                return Err(format!(
                    "sentinel address {s:?}: write IPv6 addresses in brackets, e.g. [::1]:26379"
                ));
            }
            Some((host, port)) => (host, Some(port)),
        }
    };
    if host.is_empty() {
        return Err(format!("sentinel address {s:?} has no host"));
    }
    let port = match port {
        None => DEFAULT_SENTINEL_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("sentinel address {s:?}: port {p:?} is not in 1..=65535"))?,
    };
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests;
