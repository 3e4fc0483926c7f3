//! What the guest runs and how big it is, from the pod and the image
//! (pure): the same Kubernetes rules for command, args and env as a
//! container, and the VM's memory and vCPUs from the resources.

use drover_init::config::GuestConfig;
use drover_proto::types::Pod;
use drover_proto::types::pod::Container;
use oci_spec::image::ImageConfiguration;

use crate::runtime::container::spec::process_from_image;

/// Memory a guest gets when the pod sets none.
pub const DEFAULT_MEMORY_MIB: u64 = 256;
/// Below this the cloud kernel and an initramfs do not fit.
pub const MIN_MEMORY_MIB: u64 = 96;
/// vCPUs at most.
pub const MAX_VCPUS: u32 = 16;

/// A VM pod that cannot be built as asked.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GuestError {
    /// Nothing to run.
    #[error("no command: the image has no entrypoint or cmd and the container gives none")]
    NoCommand,
    /// Memory too small for a guest.
    #[error("memory {0} MiB is too little for a VM (at least {MIN_MEMORY_MIB} MiB)")]
    TooLittleMemory(u64),
}

/// The guest config for container `c` of `pod` from `image`.
pub fn guest_config(
    pod: &Pod,
    c: &Container,
    image: &ImageConfiguration,
) -> Result<GuestConfig, GuestError> {
    let env: Vec<(String, String)> = c
        .env
        .iter()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect();
    let command = (!c.command.is_empty()).then_some(c.command.as_slice());
    let args = (!c.args.is_empty()).then_some(c.args.as_slice());
    let p = process_from_image(image, command, args, &env);
    if p.args.is_empty() {
        return Err(GuestError::NoCommand);
    }
    let cwd = c
        .working_dir
        .clone()
        .filter(|d| !d.is_empty())
        .unwrap_or(p.cwd);
    Ok(GuestConfig {
        hostname: pod
            .spec
            .hostname
            .clone()
            .unwrap_or_else(|| pod.metadata.name.clone()),
        args: p.args,
        env: p
            .env
            .iter()
            .map(|e| {
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                (k.to_string(), v.to_string())
            })
            .collect(),
        cwd,
        uid: p.uid,
        gid: p.gid,
        nameservers: vec![],
        searches: vec![],
    })
}

/// The guest's memory (MiB) and vCPUs from the container's resources:
/// the limit, else the request, else the defaults.
pub fn guest_size(c: &Container) -> Result<(u64, u32), GuestError> {
    let pick = |r: &str| {
        c.resources
            .limits
            .get(r)
            .or_else(|| c.resources.requests.get(r))
    };
    let memory_mib = pick("memory")
        .map(|q| u64::try_from(q.units()).unwrap_or(0) >> 20)
        .unwrap_or(DEFAULT_MEMORY_MIB);
    if memory_mib < MIN_MEMORY_MIB {
        return Err(GuestError::TooLittleMemory(memory_mib));
    }
    let millis = pick("cpu").map_or(1000, |q| q.millis().max(1));
    let vcpus = u32::try_from((millis + 999) / 1000)
        .unwrap_or(MAX_VCPUS)
        .clamp(1, MAX_VCPUS);
    Ok((memory_mib, vcpus))
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_proto::Quantity;

    fn container(yaml_resources: &[(&str, &str)], limits: bool) -> Container {
        let mut c = Container {
            name: "c".into(),
            image: "i".into(),
            ..Container::default()
        };
        for (k, v) in yaml_resources {
            let q = Quantity::parse(v).unwrap();
            if limits {
                c.resources.limits.insert(k.to_string(), q);
            } else {
                c.resources.requests.insert(k.to_string(), q);
            }
        }
        c
    }

    #[test]
    fn size_comes_from_limits_then_requests() {
        assert_eq!(guest_size(&container(&[], true)), Ok((256, 1)));
        assert_eq!(
            guest_size(&container(&[("memory", "512Mi"), ("cpu", "1500m")], true)),
            Ok((512, 2))
        );
        assert_eq!(
            guest_size(&container(&[("memory", "128Mi")], false)),
            Ok((128, 1))
        );
        assert_eq!(
            guest_size(&container(&[("memory", "32Mi")], true)),
            Err(GuestError::TooLittleMemory(32))
        );
        assert_eq!(
            guest_size(&container(&[("cpu", "100")], true)),
            Ok((256, MAX_VCPUS))
        );
    }

    #[test]
    fn command_env_and_dir_follow_kubernetes_rules() {
        let image: ImageConfiguration = serde_json::from_value(serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
            "config": {"Entrypoint": ["/bin/sh"], "Cmd": ["-c", "x"], "Env": ["A=1", "B=2"], "WorkingDir": "/w"}
        }))
        .unwrap();
        let mut pod = Pod::default();
        pod.metadata.name = "p".into();
        let mut c = container(&[], true);
        c.args = vec!["-c".into(), "echo hi".into()];
        c.env =
            vec![serde_json::from_value(serde_json::json!({"name": "B", "value": "3"})).unwrap()];
        let g = guest_config(&pod, &c, &image).unwrap();
        assert_eq!(g.args, ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(g.cwd, "/w");
        assert_eq!(g.hostname, "p");
        assert!(g.env.contains(&("A".into(), "1".into())));
        assert!(g.env.contains(&("B".into(), "3".into())));
        assert!(!g.env.contains(&("B".into(), "2".into())));
        let empty: ImageConfiguration = serde_json::from_value(serde_json::json!({
            "architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}
        }))
        .unwrap();
        assert_eq!(
            guest_config(&pod, &container(&[], true), &empty),
            Err(GuestError::NoCommand)
        );
    }
}
