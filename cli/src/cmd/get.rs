//! `drover get KIND [NAME...]` with `-o`, `-l`, `-n`, `-A` and `-w`.

use std::io::Write;

use anyhow::{Result, bail};
use clap::Args;
use drover_proto::client::{Client, ListOptions};
use drover_proto::{Kind, Object};
use futures::StreamExt;

use super::{connect, parse_kind};
use crate::output::{self, Format, table};

#[derive(Args)]
pub struct GetArgs {
    /// Kind (pods, deploy, svc, ..., or `all`), then optional names.
    #[arg(required = true)]
    args: Vec<String>,
    /// Output format: wide, yaml, json or name.
    #[arg(short = 'o', long)]
    output: Option<String>,
    /// Label selector, e.g. `app=web,tier in (front)`.
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Field selector, e.g. `spec.nodeName=node-1`.
    #[arg(long)]
    field_selector: Option<String>,
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// After listing, stream changes.
    #[arg(short = 'w', long)]
    watch: bool,
    /// Print Secret values with -o yaml|json (otherwise each shows only its size).
    #[arg(long)]
    show_secrets: bool,
}

impl GetArgs {
    /// `drover get all`, as `drover dev` prints it.
    pub fn all_kinds() -> GetArgs {
        GetArgs {
            args: vec!["all".into()],
            output: None,
            selector: None,
            field_selector: None,
            namespace: None,
            all_namespaces: false,
            watch: false,
            show_secrets: false,
        }
    }
}

/// What to get: kinds, each with the names asked for (none: list them).
/// Accepts kubectl's forms: `KIND [NAME…]`, `all`, and `KIND/NAME…`.
fn targets(args: &[String]) -> Result<Vec<(Kind, Vec<String>)>> {
    let Some((first, rest)) = args.split_first() else {
        bail!("say what to get, e.g. `drover get pods`");
    };
    if first.contains('/') {
        let mut out: Vec<(Kind, Vec<String>)> = Vec::new();
        for a in args {
            let Some((k, name)) = a.split_once('/') else {
                bail!("{a:?}: mix of TYPE/NAME and plain arguments; use TYPE/NAME for each");
            };
            let kind = parse_kind(k)?;
            match out.iter_mut().find(|(existing, _)| *existing == kind) {
                Some((_, names)) => names.push(name.to_string()),
                None => out.push((kind, vec![name.to_string()])),
            }
        }
        return Ok(out);
    }
    if first == "all" {
        return Ok(ALL.iter().map(|k| (*k, rest.to_vec())).collect());
    }
    Ok(vec![(parse_kind(first)?, rest.to_vec())])
}

const ALL: [Kind; 5] = [
    Kind::Pod,
    Kind::Service,
    Kind::Deployment,
    Kind::ReplicaSet,
    Kind::HorizontalPodAutoscaler,
];

pub async fn run(server: &str, args: GetArgs) -> Result<()> {
    let format = Format::parse(args.output.as_deref())?;
    let targets = targets(&args.args)?;
    let kinds: Vec<Kind> = targets.iter().map(|(k, _)| *k).collect();
    let any_names = targets.iter().any(|(_, n)| !n.is_empty());
    if args.watch && kinds.len() > 1 {
        bail!("-w watches one kind at a time");
    }
    let client = connect(server).await?;
    let ns = args
        .namespace
        .clone()
        .unwrap_or_else(|| drover_proto::DEFAULT_NAMESPACE.into());
    let opts = ListOptions {
        namespace: if args.all_namespaces {
            None
        } else {
            Some(ns.clone())
        },
        label_selector: args.selector.clone().unwrap_or_default(),
        field_selector: args.field_selector.clone().unwrap_or_default(),
    };

    let mut collected: Vec<Object> = Vec::new();
    let mut last_rv = 0;
    let mut printed_tables = 0;
    for (kind, names) in &targets {
        let objects = if names.is_empty() {
            let (items, rv) = client.list(*kind, &opts).await?;
            last_rv = rv;
            items
        } else {
            let mut v = Vec::new();
            for n in names {
                v.push(
                    client
                        .get(*kind, &ns, n)
                        .await
                        .map_err(|e| anyhow::anyhow!("{}/{n}: {e}", kind.lower()))?,
                );
            }
            v
        };
        match format {
            Format::Table | Format::Wide => {
                if objects.is_empty() {
                    continue;
                }
                if printed_tables > 0 {
                    println!();
                }
                printed_tables += 1;
                let mut objects = objects;
                if kinds.len() > 1 {
                    // `get all` prefixes names with their kind, as kubectl does.
                    for o in &mut objects {
                        o.metadata.name = format!("{}/{}", kind.lower(), o.metadata.name);
                    }
                }
                println!(
                    "{}",
                    table::table(*kind, &objects, format == Format::Wide, args.all_namespaces)
                );
            }
            _ => collected.extend(objects.into_iter().map(|o| shown(o, args.show_secrets))),
        }
    }
    match format {
        Format::Table | Format::Wide => {
            if printed_tables == 0 && !args.watch {
                let where_ = if args.all_namespaces {
                    String::new()
                } else {
                    format!(" in {ns} namespace")
                };
                eprintln!("No resources found{where_}.");
            }
        }
        Format::Name => {
            for o in &collected {
                println!("{}", o.display_name());
            }
        }
        Format::Json => println!(
            "{}",
            output::to_json(&output::document(&collected, any_names))?
        ),
        Format::Yaml => print!(
            "{}",
            output::to_yaml(&output::document(&collected, any_names))?
        ),
    }
    if args.watch {
        watch(&client, kinds[0], &opts, last_rv, format, args.show_secrets).await?;
    }
    Ok(())
}

async fn watch(
    client: &Client,
    kind: Kind,
    opts: &ListOptions,
    since: u64,
    format: Format,
    show_secrets: bool,
) -> Result<()> {
    let mut stream = client.watch(kind, opts, Some(since)).await?;
    let mut stdout = std::io::stdout();
    while let Some(ev) = stream.next().await {
        let mut ev = ev?;
        ev.object = shown(ev.object, show_secrets);
        let line = match format {
            Format::Table | Format::Wide => {
                let h = table::headers(kind, format == Format::Wide);
                table::render(
                    &h,
                    vec![table::row(kind, &ev.object, format == Format::Wide)],
                    false,
                )
            }
            Format::Name => ev.object.display_name(),
            Format::Json => serde_json::to_string(
                &serde_json::json!({"type": ev.type_, "object": ev.object.to_value()}),
            )?,
            Format::Yaml => format!("---\n{}", output::to_yaml(&ev.object.to_value())?),
        };
        writeln!(stdout, "{line}")?;
        stdout.flush()?;
    }
    Ok(())
}

/// `object` as printed: Secret values redacted unless `--show-secrets`.
fn shown(mut object: Object, show_secrets: bool) -> Object {
    if !show_secrets {
        output::secrets::redact(&mut object);
    }
    object
}
