//! Drover's node agent: runs pods as containers or microVMs.
//!
//! The node-local machinery for containers, driven by the agent's pod loop:
//!
//! 1. [`image::ImageStore`]: `ensure_image(name, policy, opts, progress)`
//!    pulls (or not, per `imagePullPolicy`) into verified blobs;
//!    [`image::import::import`] loads OCI layouts and `docker save`
//!    archives; `prepare_layers(&image)` unpacks each layer once and returns
//!    the overlay lower directories. Unpacking is blocking I/O: call it from
//!    `spawn_blocking`.
//! 2. [`runtime::container::spec::process_from_image`] and
//!    [`runtime::container::user::resolve_in_layers`] turn the image config
//!    and the pod's container into a [`runtime::container::ContainerSpec`];
//!    [`runtime::container::bundle::prepare`] writes its `config.json` and
//!    returns the shim's config.
//! 3. [`shim::ShimLauncher::launch`] hands it to a detached per-container
//!    shim (the `drover shim` hidden subcommand calls [`shim::shim_main`]);
//!    the returned [`shim::ShimHandle`] stops, waits and reports
//!    ([`shim::ShimState`]: exit code, signal, `OOMKilled`), and
//!    [`shim::ShimHandle::adopt`] finds it again after an agent restart.
//! 4. After the container ends (or the pod goes), the shim has removed its
//!    cgroups and mount; [`runtime::container::bundle::remove`] removes its
//!    directory, and [`image::ImageStore::gc`] trims the store.

pub mod agent;
pub mod image;
pub mod metrics;
pub mod network;
pub mod runtime;
pub mod shim;
