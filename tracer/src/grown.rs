//! Counts the kernel keeps in a hash map by key (dropped segments, resets in a storm),
//! reported as what each key grew by since the last look. The kernel only adds; user space
//! remembers what it reported, so each report carries an exact count and none is lost.

use std::{collections::HashMap, hash::Hash};

use aya::{maps::MapData, Pod};

use crate::loader::Tracer;

pub(crate) struct Grown<K, V> {
    map: aya::maps::HashMap<MapData, K, V>,
    reported: HashMap<K, u64>,
}

impl<K: Pod + Eq + Hash, V: Pod> Grown<K, V> {
    /// Takes map `name` from `tracer`.
    pub(crate) fn take(tracer: &mut Tracer, name: &str) -> anyhow::Result<Self> {
        let map = tracer
            .ebpf
            .take_map(name)
            .ok_or_else(|| anyhow::anyhow!("{name} map missing from the object"))?;
        Ok(Self { map: aya::maps::HashMap::try_from(map)?, reported: HashMap::new() })
    }

    /// Each key whose count (`count_of` its value) grew, with its value and the growth.
    pub(crate) fn sweep(&mut self, count_of: impl Fn(&V) -> u64) -> Vec<(K, V, u64)> {
        let mut grown = Vec::new();
        for entry in self.map.iter() {
            let Ok((key, value)) = entry else { continue };
            let count = count_of(&value);
            let reported = self.reported.entry(key).or_insert(0);
            if count > *reported {
                grown.push((key, value, count - *reported));
                *reported = count;
            }
        }
        grown
    }
}
