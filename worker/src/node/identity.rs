//! A node's name from the launcher that started it. Ranks are ordered by node name, so a
//! launcher's node index becomes a zero-padded name (`node-00003`) that sorts the same
//! way: with Kubeflow Trainer (`PET_NODE_RANK`), Slurm (`SLURM_NODEID`, the node's index
//! in the allocation) or a Kubernetes Indexed Job, which is also what each job of a
//! JobSet is (`JOB_COMPLETION_INDEX`), every node gets the rank block of its index.

/// The variables read, in order of preference, with the launcher each comes from.
pub const INDEX_VARIABLES: [(&str, &str); 3] = [
    ("PET_NODE_RANK", "Kubeflow Trainer"),
    ("SLURM_NODEID", "Slurm"),
    ("JOB_COMPLETION_INDEX", "an Indexed Job or JobSet"),
];

/// The node name the environment (`get` reads a variable) gives, with where it came
/// from; `Err` for a variable that is set but not a node index.
pub fn node_name_from_env(
    get: impl Fn(&str) -> Option<String>,
) -> Result<Option<(String, &'static str)>, String> {
    for (var, launcher) in INDEX_VARIABLES {
        let Some(value) = get(var) else {
            continue;
        };
        let index: u32 = value
            .trim()
            .parse()
            .map_err(|_| format!("{var}={value:?} (set by {launcher}) is not a node index"))?;
        return Ok(Some((format!("node-{index:05}"), launcher)));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_of(vars: &[(&str, &str)]) -> Result<Option<String>, String> {
        let get = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        Ok(node_name_from_env(get)?.map(|(n, _)| n))
    }

    #[test]
    fn launcher_indices_become_names_that_sort_like_the_indices() {
        let name = |vars: &[(&str, &str)]| name_of(vars).unwrap();
        assert_eq!(name(&[]), None);
        assert_eq!(
            name(&[("JOB_COMPLETION_INDEX", "3")]).unwrap(),
            "node-00003"
        );
        assert_eq!(name(&[("SLURM_NODEID", "12")]).unwrap(), "node-00012");
        // Kubeflow's rank wins over the Indexed Job's index it runs in.
        assert_eq!(
            name(&[("JOB_COMPLETION_INDEX", "7"), ("PET_NODE_RANK", "2")]).unwrap(),
            "node-00002"
        );
        let mut names: Vec<String> = ["10", "2", "1"]
            .iter()
            .map(|i| name(&[("SLURM_NODEID", i)]).unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["node-00001", "node-00002", "node-00010"]);
        let err = name_of(&[("SLURM_NODEID", "first")]).unwrap_err();
        assert!(
            err.contains("SLURM_NODEID") && err.contains("Slurm"),
            "{err}"
        );
    }
}
