use std::net::IpAddr;

use wasi::sockets::ip_name_lookup::resolve_addresses;

use super::Reason;
use crate::sys;

/// Looks up `name` through `wasi:sockets/ip-name-lookup` and returns its addresses.
pub fn lookup_host(name: &str) -> Result<Vec<IpAddr>, Reason> {
    let failed = |code| Reason::Lookup {
        name: name.to_owned(),
        cause: Box::new(Reason::from_code(code)),
    };
    let stream = resolve_addresses(&sys::network(), name).map_err(failed)?;
    let ready = stream.subscribe();
    let mut ips = Vec::new();
    while let Some(ip) =
        sys::retry(&ready, None, || stream.resolve_next_address()).map_err(failed)?
    {
        ips.push(sys::ip_from_wasi(ip));
    }
    if ips.is_empty() {
        return Err(Reason::Lookup {
            name: name.to_owned(),
            cause: Box::new(Reason::NoSuchHost),
        });
    }
    Ok(ips)
}
