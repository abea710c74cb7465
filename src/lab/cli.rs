//! `flightdeck lab`: the lab in the foreground until Ctrl-C.

use std::process::ExitCode;

use super::{Fault, Lab, LabConfig, LbKind, Product, Timing};
use crate::cli::LabArgs;
use crate::lb::haproxy::{haproxy_available, HaproxyError};

/// Starts the lab with realistic timing, prints where everything is, writes the target and runs
/// until Ctrl-C.
pub fn run(args: &LabArgs) -> ExitCode {
    let cfg = match config_from(args) {
        Ok(c) => c,
        Err(e) => {
            crate::eprintln_clean!("flightdeck lab: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = require_haproxy(cfg.lb) {
        crate::eprintln_clean!("flightdeck lab --lb haproxy: {e}");
        return ExitCode::from(2);
    }
    let target_out = args.target_out.clone();
    // Callable from inside a runtime (the lead's dispatch may be async) or outside one.
    if tokio::runtime::Handle::try_current().is_ok() {
        match std::thread::spawn(move || block_on(cfg, target_out)).join() {
            Ok(code) => code,
            Err(_) => ExitCode::FAILURE,
        }
    } else {
        block_on(cfg, target_out)
    }
}

fn config_from(args: &LabArgs) -> Result<LabConfig, super::LabError> {
    let personality = match &args.personality {
        Some(path) => Some(std::sync::Arc::new(
            super::data::load(path).map_err(|d| super::LabError::Config(d.to_string()))?,
        )),
        None => None,
    };
    let product: Product = match personality {
        Some(_) => Product::Generic,
        None => args.product.parse()?,
    };
    let faults = args
        .fault
        .iter()
        .map(|f| f.parse::<Fault>())
        .collect::<Result<Vec<_>, _>>()?;
    Ok(LabConfig {
        nodes: args.nodes,
        product,
        version: args.version.clone(),
        to_version: None,
        data_dir: args.data.clone(),
        load_rps: args.load,
        faults,
        timing: Timing::realistic(),
        lb: args.lb.parse()?,
        personality,
        replication_factor: args.replication_factor,
    })
}

/// Refuses a HAProxy lab up front when HAProxy is not installed, with how to install it.
pub fn require_haproxy(lb: LbKind) -> Result<(), HaproxyError> {
    if lb == LbKind::Haproxy && !haproxy_available() {
        return Err(HaproxyError::NotInstalled);
    }
    Ok(())
}

fn block_on(cfg: LabConfig, target_out: Option<std::path::PathBuf>) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            crate::eprintln_clean!("flightdeck lab: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(foreground(cfg, target_out))
}

async fn foreground(cfg: LabConfig, target_out: Option<std::path::PathBuf>) -> ExitCode {
    let lab = match Lab::start(cfg).await {
        Ok(l) => l,
        Err(e) => {
            crate::eprintln_clean!("flightdeck lab: {e}");
            return ExitCode::FAILURE;
        }
    };
    let path = target_out.unwrap_or_else(|| lab.data_dir().join("target.toml"));
    if let Err(e) = lab.write_target(&path) {
        crate::eprintln_clean!("flightdeck lab: {e}");
        lab.shutdown().await;
        return ExitCode::FAILURE;
    }
    let snap = lab.snapshot().await;
    println!("lab {} is up:", lab.target().name);
    for n in &snap.nodes {
        let group = n
            .group
            .as_deref()
            .map(|g| format!(" [{g}]"))
            .unwrap_or_default();
        println!(
            "  {:<8} http://{}  {} {} {}{group}",
            n.name,
            n.address,
            n.version,
            n.role,
            n.state.as_str()
        );
    }
    println!("  load balancer  http://{}", lab.lb_frontend());
    if let Some(h) = lab.haproxy() {
        println!(
            "  haproxy        runtime API {} (backend {}), config {}, log {}",
            h.runtime_address(),
            h.backend(),
            h.config_path().display(),
            h.log_path().display()
        );
    }
    println!("  admin          {}", lab.admin_url());
    println!("  target         {}", path.display());
    println!("Ctrl-C stops the lab.");
    if let Err(e) = tokio::signal::ctrl_c().await {
        crate::eprintln_clean!("flightdeck lab: cannot wait for Ctrl-C: {e}");
    }
    println!("stopping the lab...");
    lab.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(product: &str, faults: &[&str], lb: &str) -> LabArgs {
        LabArgs {
            personality: None,
            nodes: 2,
            product: product.into(),
            version: Some("1.25.10".into()),
            data: None,
            target_out: None,
            load: 5,
            fault: faults.iter().map(|f| f.to_string()).collect(),
            lb: lb.into(),
            replication_factor: None,
        }
    }

    #[test]
    fn arguments_become_a_realistic_config() {
        let cfg = config_from(&args("weaviate", &["slow:node1:1s"], "embedded")).unwrap();
        assert_eq!(cfg.product, Product::Weaviate);
        assert_eq!(cfg.timing, Timing::realistic());
        assert_eq!(cfg.faults.len(), 1);
        assert_eq!(cfg.load_rps, 5);
        assert!(config_from(&args("oracle", &[], "embedded")).is_err());
        assert!(config_from(&args("generic", &["boom"], "embedded")).is_err());
    }

    #[test]
    fn the_lb_choice_reaches_the_config() {
        let cfg = config_from(&args("generic", &[], "haproxy")).unwrap();
        assert_eq!(cfg.lb, LbKind::Haproxy);
        let cfg = config_from(&args("generic", &[], "embedded")).unwrap();
        assert_eq!(cfg.lb, LbKind::Embedded);
        assert!(config_from(&args("generic", &[], "nginx")).is_err());
    }

    #[test]
    fn bad_arguments_exit_2() {
        assert_eq!(run(&args("oracle", &[], "embedded")), ExitCode::from(2));
        assert_eq!(run(&args("oracle", &[], "haproxy")), ExitCode::from(2));
    }

    #[test]
    fn haproxy_required_only_for_a_haproxy_lab() {
        assert!(require_haproxy(LbKind::Embedded).is_ok());
        match require_haproxy(LbKind::Haproxy) {
            Ok(()) => assert!(haproxy_available()),
            Err(e) => assert!(e.to_string().contains("apt-get install haproxy"), "{e}"),
        }
    }
}
