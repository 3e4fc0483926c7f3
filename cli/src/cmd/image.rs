//! `drover image`: the image store of the node this command runs on.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use drover_node_agent::image::{ImageStore, PushOptions, import};

#[derive(Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    command: ImageCommand,
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Load an OCI layout (directory or tarball) or a `docker save` tarball.
    Import {
        /// The layout directory or archive.
        path: PathBuf,
        /// Name for a single-image archive without a full name inside.
        #[arg(long)]
        name: Option<String>,
        /// The agent's data directory.
        #[arg(long, default_value = "/var/lib/drover/agent")]
        data_dir: PathBuf,
    },
    /// Push an image of the store to a registry, manifest byte for byte.
    Push {
        /// The image in the store (as `drover image ls` names it).
        image: String,
        /// Where to: `HOST[:PORT]/REPO:TAG`.
        target: String,
        /// Plain HTTP to the target's registry (e.g. 127.0.0.1:5000).
        #[arg(long)]
        insecure: bool,
        /// The agent's data directory.
        #[arg(long, default_value = "/var/lib/drover/agent")]
        data_dir: PathBuf,
    },
    /// List the images in the store.
    Ls {
        /// The agent's data directory.
        #[arg(long, default_value = "/var/lib/drover/agent")]
        data_dir: PathBuf,
    },
}

pub async fn run(args: ImageArgs) -> Result<()> {
    match args.command {
        ImageCommand::Import {
            path,
            name,
            data_dir,
        } => {
            let store = ImageStore::open(&data_dir)
                .with_context(|| format!("opening the image store in {}", data_dir.display()))?;
            let images = import::import(&store, &path, name.as_deref())?;
            for i in images {
                println!("imported {} ({})", i.name, i.manifest);
            }
        }
        ImageCommand::Push {
            image,
            target,
            insecure,
            data_dir,
        } => {
            let store = ImageStore::open(&data_dir)
                .with_context(|| format!("opening the image store in {}", data_dir.display()))?;
            let opts = PushOptions { insecure };
            let digest = store
                .push(&image, &target, &opts, &mut |d, size| {
                    eprintln!("pushed {d} ({size} bytes)");
                })
                .await?;
            println!("pushed {image} to {target} ({digest})");
        }
        ImageCommand::Ls { data_dir } => {
            let store = ImageStore::open(&data_dir)?;
            let rows = store
                .list()
                .into_iter()
                .map(|i| vec![i.name, i.manifest.to_string()])
                .collect();
            print!(
                "{}",
                crate::output::table::render(&["NAME", "DIGEST"], rows, true)
            );
        }
    }
    Ok(())
}
