//! The built guest imports exactly the interfaces `wit/sockbox.wit`'s `guest` world
//! declares (nothing outside the contract, nothing declared but unused), and exports
//! exactly what its `plugin` world does.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context as _, Result};
use wasmtime::component::Component;
use wit_parser::{Resolve, WorldKey};

/// The `guest` world's imports as fully qualified interface names
/// (`wasi:sockets/tcp@0.2.12`), each with the interfaces it takes types from.
fn world_imports() -> Result<BTreeMap<String, BTreeSet<String>>> {
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_dir(&wit).context("parse wit/")?;
    let world = resolve.select_world(&[package], Some("guest"))?;
    let name = |id| resolve.id_of(id).context("a named interface");
    resolve.worlds[world]
        .imports
        .keys()
        .map(|key| {
            let WorldKey::Interface(id) = key else {
                anyhow::bail!("the world imports a bare name: {key:?}");
            };
            let deps = resolve
                .interface_direct_deps(*id)
                .map(name)
                .collect::<Result<_>>()?;
            Ok((name(*id)?, deps))
        })
        .collect()
}

/// The component's imports, as wasmtime sees them.
fn component_imports() -> Result<BTreeSet<String>> {
    let engine = wasmtime::Engine::default();
    let component = Component::new(&engine, sockbox_host::GUEST_WASM)?;
    Ok(component
        .component_type()
        .imports(&engine)
        .map(|(name, _)| name.to_owned())
        .collect())
}

/// The guest imports every interface of the `guest` world and nothing else; the only
/// world interfaces it may leave out are ones other imports merely take types from
/// (`tcp` takes `duration`, a `u64`, from `monotonic-clock`).
#[test]
fn guest_imports_exactly_the_world() -> Result<()> {
    let world = world_imports()?;
    let declared: BTreeSet<String> = world.keys().cloned().collect();
    let imported = component_imports()?;
    let type_sources: BTreeSet<&String> = imported
        .iter()
        .filter_map(|name| world.get(name))
        .flatten()
        .collect();
    let undeclared: Vec<_> = imported.difference(&declared).collect();
    let unused: Vec<_> = declared
        .difference(&imported)
        .filter(|name| !type_sources.contains(name))
        .collect();
    assert!(
        undeclared.is_empty(),
        "imported but not in the world: {undeclared:?}"
    );
    assert!(
        unused.is_empty(),
        "in the world but not imported: {unused:?}"
    );
    assert!(imported.contains("wasi:sockets/tcp@0.2.12"), "{imported:?}");
    Ok(())
}

/// The `plugin` world's exports, as fully qualified interface names.
fn plugin_exports() -> Result<BTreeSet<String>> {
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_dir(&wit).context("parse wit/")?;
    let world = resolve.select_world(&[package], Some("plugin"))?;
    resolve.worlds[world]
        .exports
        .keys()
        .map(|key| match key {
            WorldKey::Interface(id) => resolve.id_of(*id).context("a named interface"),
            WorldKey::Name(name) => anyhow::bail!("the world exports a bare name: {name}"),
        })
        .collect()
}

/// The component exports what the `plugin` world does: `wasi:cli/run` for commands and
/// `sockbox:net/flows` for plugin hosts, and nothing else.
#[test]
fn guest_exports_the_plugin_world() -> Result<()> {
    let engine = wasmtime::Engine::default();
    let component = Component::new(&engine, sockbox_host::GUEST_WASM)?;
    let exports: BTreeSet<String> = component
        .component_type()
        .exports(&engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    assert_eq!(exports, plugin_exports()?);
    assert_eq!(
        exports.iter().map(String::as_str).collect::<Vec<_>>(),
        ["sockbox:net/flows@0.1.0", "wasi:cli/run@0.2.12"]
    );
    Ok(())
}
