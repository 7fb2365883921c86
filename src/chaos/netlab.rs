//! Network namespaces and nftables rules for partitions and packet loss.
//!
//! The chaos runner runs the nodes of a local cluster in Linux network namespaces,
//! one per availability zone, so that it can cut or degrade the network between
//! them, all on one machine. A [`NetLab`] builds, with `ip` (iproute2):
//!
//! - a bridge `<prefix>br` in the root namespace with address `10.X.0.1/24`, `X`
//!   chosen so as not to clash with an existing address or route;
//! - per zone, a namespace `<prefix>-<zone>` joined to the bridge by a veth pair
//!   (`<prefix>v<i>` in the root namespace, `<prefix>p<i>` in the zone) with address
//!   `10.X.0.(10+i)/24` and a default route via the bridge.
//!
//! The root namespace (the load generator, Redis bound to `10.X.0.1`) reaches every
//! zone, and zones reach each other through the bridge. Faults are nft rules in an
//! `inet` table [`TABLE`] inside each affected zone's namespace, so nothing in the
//! root namespace's firewall is touched. That table also holds a permanent guard:
//! a zone can send only to the lab's subnet and to its own loopback, so no traffic
//! from a zone leaves the lab even if the host forwards packets.
//!
//! Each fault has a [`FaultId`]; every rule it installs carries the comment
//! `fault-<id>`. A zone's table is rebuilt from the set of active faults in one
//! atomic `nft -f` transaction whenever that set changes, so healing one fault
//! removes exactly its rules.
//!
//! Everything here is synchronous (`std::process::Command`) and needs root.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::{self, Write as _};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use serde::Serialize;
use tracing::{debug, warn};

#[cfg(test)]
mod tests;

/// Second octet of the lab subnet tried first (`10.77.0.0/24`).
pub const DEFAULT_SUBNET_OCTET: u8 = 77;

/// Longest lab prefix: interface names must stay within 15 characters.
pub const MAX_PREFIX_LEN: usize = 6;

/// Longest zone name.
pub const MAX_ZONE_LEN: usize = 32;

/// Most zones in one lab (addresses `10.X.0.10` to `10.X.0.249`).
pub const MAX_ZONES: usize = 240;

/// Name of the nftables `inet` table this module owns inside each zone namespace.
pub const TABLE: &str = "fudo_chaos";

/// Errors from building, changing or removing a [`NetLab`].
#[derive(Debug, thiserror::Error)]
pub enum NetLabError {
    /// The lab prefix cannot be used to derive names.
    #[error("invalid lab prefix {prefix:?}: {reason}")]
    InvalidPrefix {
        /// The prefix given.
        prefix: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A zone name cannot be used.
    #[error("invalid zone name {zone:?}: {reason}")]
    InvalidZone {
        /// The zone name given.
        zone: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No zones, or more than [`MAX_ZONES`].
    #[error("a lab needs between 1 and {MAX_ZONES} zones, got {0}")]
    ZoneCount(usize),
    /// A zone name that is not part of this lab.
    #[error("unknown zone {0:?}")]
    UnknownZone(String),
    /// A fault id that is not active in this lab.
    #[error("unknown fault {0}")]
    UnknownFault(FaultId),
    /// A partition whose two sides share a zone, or with an empty side.
    #[error("invalid partition: {0}")]
    InvalidPartition(&'static str),
    /// A loss percentage over 100.
    #[error("loss percentage {0} is over 100")]
    InvalidPercent(u8),
    /// Every `10.X.0.0/24` overlaps an existing address or route.
    #[error("no free 10.X.0.0/24 subnet")]
    NoFreeSubnet,
    /// A namespace or link this lab would create exists already.
    #[error("{0} exists already (a leftover? see NetLab::cleanup_stale)")]
    AlreadyExists(String),
    /// The lock that serialises subnet choice could not be taken.
    #[error("cannot lock {path}: {source}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A command could not be started or fed.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A command exited unsuccessfully.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: ExitStatus,
        /// What it wrote to stderr.
        stderr: String,
    },
}

/// Identifies one active fault of a [`NetLab`]; its rules carry the comment
/// `fault-<id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct FaultId(u64);

impl fmt::Display for FaultId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fault-{}", self.0)
    }
}

/// A network fault, as installed by [`NetLab`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Fault {
    /// All traffic of the zone is dropped, except on its loopback.
    Isolate {
        /// The isolated zone.
        zone: String,
    },
    /// Traffic between every zone of `a` and every zone of `b` is dropped, both ways.
    Partition {
        /// One side.
        a: Vec<String>,
        /// The other side.
        b: Vec<String>,
    },
    /// Packets on the zone's link are dropped at random, both ways.
    Loss {
        /// The lossy zone.
        zone: String,
        /// Chance of dropping each packet, in percent.
        percent: u8,
    },
}

impl Fault {
    /// Whether this fault installs rules in `zone`'s namespace.
    fn touches(&self, zone: &str) -> bool {
        match self {
            Fault::Isolate { zone: z } | Fault::Loss { zone: z, .. } => z == zone,
            Fault::Partition { a, b } => a.iter().chain(b).any(|z| z == zone),
        }
    }
}

/// One zone's derived names and address.
#[derive(Debug, Clone)]
struct Zone {
    name: String,
    netns: String,
    veth_root: String,
    veth_ns: String,
    addr: Ipv4Addr,
}

/// A set of zone namespaces bridged to the root namespace, with injectable faults.
///
/// Dropping it (or [`NetLab::teardown`]) removes the namespaces, veths and bridge it
/// created, and nothing else.
#[derive(Debug)]
pub struct NetLab {
    prefix: String,
    octet: u8,
    zones: Vec<Zone>,
    faults: BTreeMap<FaultId, Fault>,
    next_fault: u64,
    created_netns: Vec<String>,
    created_links: Vec<String>,
}

impl NetLab {
    /// Builds a lab named `prefix` (1 to [`MAX_PREFIX_LEN`] lowercase ASCII letters
    /// or digits, starting with a letter) with one namespace per zone (names of
    /// lowercase ASCII letters, digits, `_`; at most [`MAX_ZONE_LEN`]), on the first
    /// free subnet from `10.77.0.0/24` up.
    pub fn create(prefix: &str, zones: &[&str]) -> Result<Self, NetLabError> {
        Self::create_with_subnet(prefix, zones, DEFAULT_SUBNET_OCTET)
    }

    /// As [`NetLab::create`], trying `10.<octet>.0.0/24` first, then the next free
    /// one above it (wrapping around).
    pub fn create_with_subnet(
        prefix: &str,
        zones: &[&str],
        octet: u8,
    ) -> Result<Self, NetLabError> {
        let mut lab = Self::plan(prefix, zones, octet)?;
        let existing_netns = list_netns()?;
        let existing_links = list_links()?;
        for zone in &lab.zones {
            if existing_netns.contains(&zone.netns) {
                return Err(NetLabError::AlreadyExists(format!(
                    "namespace {}",
                    zone.netns
                )));
            }
        }
        for link in lab.link_names() {
            if existing_links.contains(&link) {
                return Err(NetLabError::AlreadyExists(format!("link {link}")));
            }
        }

        // From here on, a failure drops `lab`, which removes what was created.
        {
            // Serialise subnet choice with other labs being created on this host.
            let _lock = lock_subnet_choice()?;
            let used = format!(
                "{}\n{}",
                run(&[IP, "-4", "-o", "addr", "show"], None)?,
                run(&[IP, "-4", "route", "show", "table", "all"], None)?
            );
            lab.octet = choose_octet(octet, &used).ok_or(NetLabError::NoFreeSubnet)?;
            for zone in &mut lab.zones {
                let [_, _, c, d] = zone.addr.octets();
                zone.addr = Ipv4Addr::new(10, lab.octet, c, d);
            }
            let bridge = lab.bridge_name();
            run(&[IP, "link", "add", &bridge, "type", "bridge"], None)?;
            lab.created_links.push(bridge.clone());
            let gateway = format!("{}/24", lab.gateway_addr());
            run(&[IP, "addr", "add", &gateway, "dev", &bridge], None)?;
            run(&[IP, "link", "set", &bridge, "up"], None)?;
        }

        let bridge = lab.bridge_name();
        let gateway = lab.gateway_addr().to_string();
        for zone in lab.zones.clone() {
            let ns = zone.netns.as_str();
            run(&[IP, "netns", "add", ns], None)?;
            lab.created_netns.push(zone.netns.clone());
            run(
                &[
                    IP,
                    "link",
                    "add",
                    &zone.veth_root,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &zone.veth_ns,
                    "netns",
                    ns,
                ],
                None,
            )?;
            lab.created_links.push(zone.veth_root.clone());
            run(
                &[IP, "link", "set", &zone.veth_root, "master", &bridge],
                None,
            )?;
            run(&[IP, "link", "set", &zone.veth_root, "up"], None)?;
            let addr = format!("{}/24", zone.addr);
            run(
                &[IP, "-n", ns, "addr", "add", &addr, "dev", &zone.veth_ns],
                None,
            )?;
            run(&[IP, "-n", ns, "link", "set", &zone.veth_ns, "up"], None)?;
            run(&[IP, "-n", ns, "link", "set", "lo", "up"], None)?;
            run(
                &[IP, "-n", ns, "route", "add", "default", "via", &gateway],
                None,
            )?;
            lab.apply(&zone)?;
        }
        debug!(prefix = lab.prefix, subnet = %lab.gateway_addr(), zones = lab.zones.len(), "net lab created");
        Ok(lab)
    }

    /// Validates the names and derives every name and address, creating nothing.
    fn plan(prefix: &str, zones: &[&str], octet: u8) -> Result<Self, NetLabError> {
        validate_prefix(prefix)?;
        if zones.is_empty() || zones.len() > MAX_ZONES {
            return Err(NetLabError::ZoneCount(zones.len()));
        }
        let mut seen = BTreeSet::new();
        let mut planned = Vec::with_capacity(zones.len());
        for (i, zone) in zones.iter().enumerate() {
            validate_zone(zone)?;
            if !seen.insert(*zone) {
                return Err(NetLabError::InvalidZone {
                    zone: (*zone).to_owned(),
                    reason: "appears twice",
                });
            }
            planned.push(Zone {
                name: (*zone).to_owned(),
                netns: format!("{prefix}-{zone}"),
                veth_root: format!("{prefix}v{i}"),
                veth_ns: format!("{prefix}p{i}"),
                // `i < MAX_ZONES`, so this fits in a u8.
                addr: Ipv4Addr::new(10, octet, 0, 10 + i as u8),
            });
        }
        Ok(Self {
            prefix: prefix.to_owned(),
            octet,
            zones: planned,
            faults: BTreeMap::new(),
            next_fault: 1,
            created_netns: Vec::new(),
            created_links: Vec::new(),
        })
    }

    /// The lab's prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The zone names, in the order given at creation.
    pub fn zones(&self) -> impl Iterator<Item = &str> {
        self.zones.iter().map(|z| z.name.as_str())
    }

    /// The bridge's address in the root namespace, `10.X.0.1`, which every zone
    /// reaches (bind shared services such as Redis here).
    pub fn gateway_addr(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, self.octet, 0, 1)
    }

    /// The address of `zone` inside its namespace.
    pub fn zone_addr(&self, zone: &str) -> Option<Ipv4Addr> {
        self.zone(zone).map(|z| z.addr)
    }

    /// The name of `zone`'s network namespace.
    pub fn netns_name(&self, zone: &str) -> Option<&str> {
        self.zone(zone).map(|z| z.netns.as_str())
    }

    /// `["ip", "netns", "exec", <namespace>]`: put it before a command line to run
    /// that command inside `zone`. `None` for an unknown zone.
    pub fn exec_prefix(&self, zone: &str) -> Option<Vec<String>> {
        self.zone(zone).map(|z| {
            vec![
                IP.to_owned(),
                "netns".to_owned(),
                "exec".to_owned(),
                z.netns.clone(),
            ]
        })
    }

    /// The active faults, by id.
    pub fn faults(&self) -> impl Iterator<Item = (FaultId, &Fault)> {
        self.faults.iter().map(|(id, f)| (*id, f))
    }

    /// Drops all traffic of `zone` except on its loopback: a full partition from
    /// the root namespace and every other zone.
    pub fn isolate(&mut self, zone: &str) -> Result<FaultId, NetLabError> {
        self.require(zone)?;
        self.add(Fault::Isolate {
            zone: zone.to_owned(),
        })
    }

    /// Drops traffic between every zone of `a` and every zone of `b`, both ways.
    /// The root namespace stays reachable from both sides.
    pub fn partition(&mut self, a: &[&str], b: &[&str]) -> Result<FaultId, NetLabError> {
        if a.is_empty() || b.is_empty() {
            return Err(NetLabError::InvalidPartition("a side is empty"));
        }
        for zone in a.iter().chain(b) {
            self.require(zone)?;
        }
        if a.iter().any(|z| b.contains(z)) {
            return Err(NetLabError::InvalidPartition("a zone is on both sides"));
        }
        let owned = |side: &[&str]| side.iter().map(|z| (*z).to_owned()).collect();
        self.add(Fault::Partition {
            a: owned(a),
            b: owned(b),
        })
    }

    /// Drops `percent` % of the packets on `zone`'s link, chosen at random, in each
    /// direction (nft `numgen random`). 100 behaves like [`NetLab::isolate`] for
    /// traffic off the zone.
    pub fn loss(&mut self, zone: &str, percent: u8) -> Result<FaultId, NetLabError> {
        self.require(zone)?;
        if percent > 100 {
            return Err(NetLabError::InvalidPercent(percent));
        }
        self.add(Fault::Loss {
            zone: zone.to_owned(),
            percent,
        })
    }

    /// Removes one fault's rules, leaving the others.
    pub fn heal_fault(&mut self, id: FaultId) -> Result<(), NetLabError> {
        let fault = self
            .faults
            .remove(&id)
            .ok_or(NetLabError::UnknownFault(id))?;
        self.rebuild(|zone| fault.touches(zone))
    }

    /// Removes every fault that installs rules in `zone`: its isolation and loss,
    /// and every partition it is part of (on both sides).
    pub fn heal(&mut self, zone: &str) -> Result<(), NetLabError> {
        self.require(zone)?;
        let removed: Vec<Fault> = self
            .faults
            .extract_if(.., |_, f| f.touches(zone))
            .map(|(_, f)| f)
            .collect();
        self.rebuild(|z| removed.iter().any(|f| f.touches(z)))
    }

    /// Removes every fault.
    pub fn heal_all(&mut self) -> Result<(), NetLabError> {
        self.faults.clear();
        self.rebuild(|_| true)
    }

    /// Deletes the namespaces, veths and bridge this lab created (and the rules
    /// inside them). Idempotent; also run on drop. Stops at nothing: every removal
    /// is tried, and the first error is returned.
    pub fn teardown(&mut self) -> Result<(), NetLabError> {
        let netns = std::mem::take(&mut self.created_netns);
        let links = std::mem::take(&mut self.created_links);
        if netns.is_empty() && links.is_empty() {
            return Ok(());
        }
        debug!(prefix = self.prefix, "tearing the net lab down");
        remove(&netns, &links)
    }

    /// Removes namespaces (`<prefix>-*`) and links (`<prefix>br`, `<prefix>v<n>`)
    /// left by an earlier lab with this prefix, e.g. after a crash.
    pub fn cleanup_stale(prefix: &str) -> Result<(), NetLabError> {
        validate_prefix(prefix)?;
        let netns: Vec<String> = list_netns()?
            .into_iter()
            .filter(|ns| is_lab_netns(prefix, ns))
            .collect();
        let links: Vec<String> = list_links()?
            .into_iter()
            .filter(|link| is_lab_link(prefix, link))
            .collect();
        if !netns.is_empty() || !links.is_empty() {
            debug!(prefix, ?netns, ?links, "removing stale net lab");
        }
        remove(&netns, &links)
    }

    fn zone(&self, zone: &str) -> Option<&Zone> {
        self.zones.iter().find(|z| z.name == zone)
    }

    fn require(&self, zone: &str) -> Result<(), NetLabError> {
        match self.zone(zone) {
            Some(_) => Ok(()),
            None => Err(NetLabError::UnknownZone(zone.to_owned())),
        }
    }

    fn bridge_name(&self) -> String {
        format!("{}br", self.prefix)
    }

    /// Every link name in the root namespace this lab would create.
    fn link_names(&self) -> Vec<String> {
        let mut names = vec![self.bridge_name()];
        names.extend(self.zones.iter().map(|z| z.veth_root.clone()));
        names
    }

    fn add(&mut self, fault: Fault) -> Result<FaultId, NetLabError> {
        let id = FaultId(self.next_fault);
        self.next_fault += 1;
        debug!(prefix = self.prefix, %id, ?fault, "adding fault");
        self.faults.insert(id, fault.clone());
        if let Err(error) = self.rebuild(|zone| fault.touches(zone)) {
            // Roll back to the rules we had, as far as possible.
            self.faults.remove(&id);
            if let Err(again) = self.rebuild(|zone| fault.touches(zone)) {
                warn!(%again, "cannot restore rules after a failed fault");
            }
            return Err(error);
        }
        Ok(id)
    }

    /// Rewrites the table of every zone for which `affected` is true.
    fn rebuild(&self, affected: impl Fn(&str) -> bool) -> Result<(), NetLabError> {
        let mut first_error = None;
        for zone in self.zones.iter().filter(|z| affected(&z.name)) {
            if let Err(error) = self.apply(zone) {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Replaces `zone`'s table with the rules of the active faults, atomically.
    fn apply(&self, zone: &Zone) -> Result<(), NetLabError> {
        let script = self.ruleset(zone);
        run(
            &[IP, "netns", "exec", &zone.netns, NFT, "-f", "-"],
            Some(&script),
        )
        .map(drop)
    }

    /// The nft script that (re)creates `zone`'s table. Pure.
    fn ruleset(&self, zone: &Zone) -> String {
        let addrs = |names: &[String]| -> String {
            let list: Vec<String> = names
                .iter()
                .filter_map(|n| self.zone_addr(n))
                .map(|a| a.to_string())
                .collect();
            format!("{{ {} }}", list.join(", "))
        };
        let mut input = vec![r#"iifname "lo" accept"#.to_owned()];
        let mut output = vec![
            r#"oifname "lo" accept"#.to_owned(),
            format!(
                r#"ip daddr != 10.{}.0.0/24 drop comment "guard""#,
                self.octet
            ),
            r#"meta nfproto ipv6 drop comment "guard""#.to_owned(),
        ];
        for (id, fault) in &self.faults {
            match fault {
                Fault::Isolate { zone: z } if *z == zone.name => {
                    input.push(format!(r#"drop comment "{id}""#));
                    output.push(format!(r#"drop comment "{id}""#));
                }
                Fault::Loss { zone: z, percent } if *z == zone.name => {
                    let veth = &zone.veth_ns;
                    // `numgen random mod 100` yields 0..=99, and nft rejects `< 100`.
                    let chance = match percent {
                        0 => continue,
                        100.. => String::new(),
                        p => format!("numgen random mod 100 < {p} "),
                    };
                    input.push(format!(r#"iifname "{veth}" {chance}drop comment "{id}""#));
                    output.push(format!(r#"oifname "{veth}" {chance}drop comment "{id}""#));
                }
                Fault::Partition { a, b } => {
                    let peers = if a.contains(&zone.name) {
                        b
                    } else if b.contains(&zone.name) {
                        a
                    } else {
                        continue;
                    };
                    let set = addrs(peers);
                    input.push(format!(r#"ip saddr {set} drop comment "{id}""#));
                    output.push(format!(r#"ip daddr {set} drop comment "{id}""#));
                }
                Fault::Isolate { .. } | Fault::Loss { .. } => {}
            }
        }
        let mut script = String::new();
        // Declaring the table first makes the delete succeed on the first run.
        let _ = writeln!(script, "table inet {TABLE} {{}}");
        let _ = writeln!(script, "delete table inet {TABLE}");
        let _ = writeln!(script, "table inet {TABLE} {{");
        for (chain, hook, rules) in [("input", "input", &input), ("output", "output", &output)] {
            let _ = writeln!(script, "\tchain {chain} {{");
            let _ = writeln!(
                script,
                "\t\ttype filter hook {hook} priority filter; policy accept;"
            );
            for rule in rules {
                let _ = writeln!(script, "\t\t{rule}");
            }
            let _ = writeln!(script, "\t}}");
        }
        let _ = writeln!(script, "}}");
        script
    }
}

impl Drop for NetLab {
    fn drop(&mut self) {
        if let Err(error) = self.teardown() {
            warn!(prefix = self.prefix, %error, "net lab teardown failed");
        }
    }
}

/// `ip` (iproute2). Absolute, so that a `PATH` without `/usr/sbin` still works.
const IP: &str = "/usr/sbin/ip";
/// `nft` (nftables), absolute for the same reason.
const NFT: &str = "/usr/sbin/nft";

fn validate_prefix(prefix: &str) -> Result<(), NetLabError> {
    let reason = if prefix.is_empty() {
        Some("empty")
    } else if prefix.len() > MAX_PREFIX_LEN {
        Some("longer than 6 characters")
    } else if !prefix.starts_with(|c: char| c.is_ascii_lowercase()) {
        Some("must start with a lowercase ASCII letter")
    } else if !prefix
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        Some("only lowercase ASCII letters and digits are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(NetLabError::InvalidPrefix {
            prefix: prefix.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

fn validate_zone(zone: &str) -> Result<(), NetLabError> {
    let reason = if zone.is_empty() {
        Some("empty")
    } else if zone.len() > MAX_ZONE_LEN {
        Some("longer than 32 characters")
    } else if !zone
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        Some("only lowercase ASCII letters, digits, '-' and '_' are allowed")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(NetLabError::InvalidZone {
            zone: zone.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Whether `netns` is a zone namespace of a lab named `prefix` (prefixes hold no
/// `-`, so another prefix never matches).
fn is_lab_netns(prefix: &str, netns: &str) -> bool {
    netns
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|zone| !zone.is_empty())
}

/// Whether `link` is the bridge or a root-side veth of a lab named `prefix`.
fn is_lab_link(prefix: &str, link: &str) -> bool {
    match link.strip_prefix(prefix) {
        Some("br") => true,
        Some(rest) => rest
            .strip_prefix('v')
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit())),
        None => false,
    }
}

/// The first `X` from `preferred` up (wrapping, skipping 0 and 255) such that
/// `10.X.0.0/24` overlaps none of the IPv4 networks or addresses in `used` (the
/// text of `ip addr` and `ip route` listings).
fn choose_octet(preferred: u8, used: &str) -> Option<u8> {
    let taken: Vec<(u32, u32)> = used.split_whitespace().filter_map(parse_cidr).collect();
    let free = |x: u8| {
        let net = u32::from(Ipv4Addr::new(10, x, 0, 0));
        taken.iter().all(|&(addr, len)| {
            let len = len.min(24);
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            addr & mask != net & mask
        })
    };
    (preferred.max(1)..=254)
        .chain(1..preferred.max(1))
        .find(|&x| free(x))
}

/// Parses `a.b.c.d` or `a.b.c.d/len` into (address, prefix length).
fn parse_cidr(token: &str) -> Option<(u32, u32)> {
    let (addr, len) = match token.split_once('/') {
        Some((addr, len)) => (addr, len.parse().ok().filter(|l: &u32| *l <= 32)?),
        None => (token, 32),
    };
    let addr: Ipv4Addr = addr.parse().ok()?;
    Some((u32::from(addr), len))
}

/// Holds an exclusive lock on a host-wide file while choosing and claiming a subnet.
fn lock_subnet_choice() -> Result<File, NetLabError> {
    let path = std::env::temp_dir().join("fudo-netlab.lock");
    let lock = |path: &Path| -> io::Result<File> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        file.lock()?;
        Ok(file)
    };
    lock(&path).map_err(|source| NetLabError::Lock { path, source })
}

/// Runs a command, with `stdin` fed to it if given; returns its stdout.
fn run(args: &[&str], stdin: Option<&str>) -> Result<String, NetLabError> {
    let command = args.join(" ");
    debug!(%command, "netlab running");
    let spawn_error = |source| NetLabError::Spawn {
        command: command.clone(),
        source,
    };
    let (program, rest) = args
        .split_first()
        .ok_or_else(|| spawn_error(io::Error::other("empty command")))?;
    let mut child = Command::new(program)
        .args(rest)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).map_err(spawn_error)?;
    }
    let output = child.wait_with_output().map_err(spawn_error)?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(NetLabError::Command {
            command,
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        })
    }
}

/// Names of the network namespaces (`ip netns list`).
fn list_netns() -> Result<BTreeSet<String>, NetLabError> {
    Ok(run(&[IP, "netns", "list"], None)?
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Names of the links of the root namespace (`ip -o link show`).
fn list_links() -> Result<BTreeSet<String>, NetLabError> {
    Ok(run(&[IP, "-o", "link", "show"], None)?
        .lines()
        .filter_map(|line| line.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_owned())
        .collect())
}

/// Deletes those of `netns` and `links` that exist; tries all, returns the first error.
fn remove(netns: &[String], links: &[String]) -> Result<(), NetLabError> {
    let mut first_error = None;
    let existing_netns = list_netns()?;
    for ns in netns.iter().filter(|ns| existing_netns.contains(*ns)) {
        if let Err(error) = run(&[IP, "netns", "delete", ns], None) {
            first_error.get_or_insert(error);
        }
    }
    // Deleting a namespace usually takes its veth pair with it; a process still
    // inside keeps it alive, so delete the root ends explicitly. Bridge last.
    let existing_links = list_links()?;
    let mut ordered: Vec<&String> = links.iter().collect();
    ordered.sort_by_key(|l| l.ends_with("br"));
    for link in ordered.into_iter().filter(|l| existing_links.contains(*l)) {
        if let Err(error) = run(&[IP, "link", "delete", link], None) {
            // The kernel removes a deleted namespace's veth peers asynchronously: a link that
            // vanished between the listing and the delete is gone, which is what we wanted.
            if list_links()?.contains(link) {
                first_error.get_or_insert(error);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}
