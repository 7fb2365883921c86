//! The shape of a local cluster: regions, their availability zones and the nodes in each, with
//! deterministic names (`<az>-<k>`) so that scenario files and operators can name a node.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ClusterError;

/// One region and its availability zones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSpec {
    /// Region name, e.g. `tokyo`.
    pub name: String,
    /// Availability zones of the region, e.g. `["tokyo-a", "tokyo-c"]`.
    pub azs: Vec<String>,
}

/// Regions × AZs × nodes per AZ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// The regions, in order.
    pub regions: Vec<RegionSpec>,
    /// Nodes started in every AZ.
    #[serde(default = "one")]
    pub nodes_per_az: usize,
}

fn one() -> usize {
    1
}

impl Default for Topology {
    /// Two regions of two AZs, one node each: the smallest layout that survives the loss of a
    /// node, an AZ or a region.
    fn default() -> Self {
        Self {
            regions: vec![
                RegionSpec {
                    name: "tokyo".into(),
                    azs: vec!["tokyo-a".into(), "tokyo-c".into()],
                },
                RegionSpec {
                    name: "osaka".into(),
                    azs: vec!["osaka-a".into(), "osaka-b".into()],
                },
            ],
            nodes_per_az: 1,
        }
    }
}

/// A node's identity in the topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodePlace {
    /// Index in [`Topology::nodes`] order.
    pub index: usize,
    /// `<az>-<k>`, k from 1.
    pub name: String,
    /// Region name.
    pub region: String,
    /// AZ name.
    pub az: String,
}

impl fmt::Display for NodePlace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}/{})", self.name, self.region, self.az)
    }
}

/// A label usable as a node, AZ or region name: 1–12 characters of `[a-z0-9-]`, starting with
/// a letter (short enough to derive network namespace and interface names from).
fn check_label(kind: &str, label: &str) -> Result<(), ClusterError> {
    let ok = !label.is_empty()
        && label.len() <= 12
        && label.starts_with(|c: char| c.is_ascii_lowercase())
        && label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ClusterError::Topology(format!(
            "{kind} name {label:?} must be 1-12 characters of a-z, 0-9 and '-', starting with a letter"
        )))
    }
}

impl Topology {
    /// Checks names (valid, unique) and sizes (at least one node).
    ///
    /// # Errors
    ///
    /// [`ClusterError::Topology`] saying what is wrong.
    pub fn validate(&self) -> Result<(), ClusterError> {
        if self.regions.is_empty() {
            return Err(ClusterError::Topology(
                "at least one region is needed".into(),
            ));
        }
        if self.nodes_per_az == 0 || self.nodes_per_az > 8 {
            return Err(ClusterError::Topology(format!(
                "nodes_per_az must be 1-8, got {}",
                self.nodes_per_az
            )));
        }
        let mut seen = std::collections::HashSet::new();
        for region in &self.regions {
            check_label("region", &region.name)?;
            if !seen.insert(region.name.as_str()) {
                return Err(ClusterError::Topology(format!(
                    "name {:?} is used twice",
                    region.name
                )));
            }
            if region.azs.is_empty() {
                return Err(ClusterError::Topology(format!(
                    "region {:?} has no AZ",
                    region.name
                )));
            }
            for az in &region.azs {
                check_label("AZ", az)?;
                if !seen.insert(az.as_str()) {
                    return Err(ClusterError::Topology(format!("name {az:?} is used twice")));
                }
            }
        }
        Ok(())
    }

    /// Every node, region by region, AZ by AZ.
    #[must_use]
    pub fn nodes(&self) -> Vec<NodePlace> {
        let mut out = Vec::new();
        for region in &self.regions {
            for az in &region.azs {
                for k in 1..=self.nodes_per_az {
                    out.push(NodePlace {
                        index: out.len(),
                        name: format!("{az}-{k}"),
                        region: region.name.clone(),
                        az: az.clone(),
                    });
                }
            }
        }
        out
    }

    /// Every AZ, in order.
    #[must_use]
    pub fn azs(&self) -> Vec<&str> {
        self.regions
            .iter()
            .flat_map(|r| r.azs.iter().map(String::as_str))
            .collect()
    }

    /// Parses the command-line form `region:az1,az2`.
    ///
    /// # Errors
    ///
    /// [`ClusterError::Topology`] for a malformed entry.
    pub fn parse_region(arg: &str) -> Result<RegionSpec, ClusterError> {
        let (name, azs) = arg.split_once(':').ok_or_else(|| {
            ClusterError::Topology(format!(
                "region {arg:?} must look like `tokyo:tokyo-a,tokyo-c`"
            ))
        })?;
        Ok(RegionSpec {
            name: name.trim().to_owned(),
            azs: azs
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_layout_is_two_regions_of_two_azs() {
        let t = Topology::default();
        t.validate().expect("valid");
        let names: Vec<String> = t.nodes().into_iter().map(|n| n.name).collect();
        assert_eq!(names, ["tokyo-a-1", "tokyo-c-1", "osaka-a-1", "osaka-b-1"]);
        assert_eq!(t.azs(), ["tokyo-a", "tokyo-c", "osaka-a", "osaka-b"]);
    }

    #[test]
    fn nodes_per_az_numbers_nodes_within_an_az() {
        let t = Topology {
            regions: vec![RegionSpec {
                name: "r".into(),
                azs: vec!["z".into()],
            }],
            nodes_per_az: 2,
        };
        let nodes = t.nodes();
        assert_eq!(nodes[1].name, "z-2");
        assert_eq!(nodes[1].index, 1);
    }

    #[test]
    fn bad_names_and_duplicates_are_refused() {
        let mut t = Topology::default();
        t.regions[1].azs[0] = "tokyo-a".into();
        assert!(t.validate().unwrap_err().to_string().contains("used twice"));
        let mut t = Topology::default();
        t.regions[0].name = "Tokyo!".into();
        assert!(t.validate().unwrap_err().to_string().contains("a-z"));
        let t = Topology {
            nodes_per_az: 0,
            ..Topology::default()
        };
        assert!(t.validate().is_err());
    }

    #[test]
    fn command_line_region_form() {
        let r = Topology::parse_region("osaka:osaka-a, osaka-b").expect("parses");
        assert_eq!(r.azs, ["osaka-a", "osaka-b"]);
        assert!(Topology::parse_region("osaka").is_err());
    }
}
