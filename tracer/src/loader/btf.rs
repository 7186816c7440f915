//! A small reader of the kernel's BTF (`/sys/kernel/btf/vmlinux`): just enough to find the
//! byte offset of a struct member, descending through anonymous structs and unions the
//! way C does (`sk->__sk_common.skc_daddr` sits inside an anonymous union).
//!
//! Format: <https://www.kernel.org/doc/html/v6.1/bpf/btf.html>. aya parses BTF too, but
//! keeps member lookup private, and this is all we need of it.

use std::path::Path;

use super::Error;

const BTF_MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;
const KIND_ENUM: u32 = 6;
const KIND_ENUM64: u32 = 19;
const KIND_UNION: u32 = 5;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_TYPE_TAG: u32 = 18;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
/// How deep anonymous members may nest: C code has a handful of levels; a file that says
/// more (or loops) is not well-formed.
const MAX_NESTING: u32 = 32;

/// A bitfield inside one byte (see `Btf::bitfield`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Bitfield {
    pub(crate) byte: u32,
    pub(crate) shift: u32,
    pub(crate) width: u32,
}

struct Member {
    name_off: u32,
    type_id: u32,
    /// Offset from the start of the enclosing struct, in bits.
    bit_offset: u32,
    /// A bitfield's width in bits (structs with BTF's kind_flag set); 0 for a whole member.
    bitfield_size: u32,
}

struct Type {
    kind: u32,
    name_off: u32,
    /// For modifiers and typedefs: the type they refer to; for a function, its prototype.
    ref_type: u32,
    /// A struct's or union's members; a function prototype's parameters (offset 0).
    members: Vec<Member>,
    /// Enumerators of an enum: (name offset, value).
    values: Vec<(u32, i64)>,
}

/// Parsed BTF: the type table (index = type id) and the string section.
pub(crate) struct Btf {
    types: Vec<Type>,
    strings: Vec<u8>,
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at + 4)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

impl Btf {
    pub(crate) fn from_file(path: &Path) -> Result<Self, Error> {
        let data =
            std::fs::read(path).map_err(|why| Error::NoBtf { path: super::shown(path), why })?;
        Self::parse(&data).ok_or_else(|| Error::BadBtf(super::shown(path)))
    }

    /// Parses little-endian BTF; `None` when the data is not well-formed.
    pub(crate) fn parse(data: &[u8]) -> Option<Self> {
        let magic = u16::from_le_bytes(data.get(0..2)?.try_into().ok()?);
        if magic != BTF_MAGIC {
            return None;
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let type_off = u32_at(data, 8)? as usize;
        let type_len = u32_at(data, 12)? as usize;
        let str_off = u32_at(data, 16)? as usize;
        let str_len = u32_at(data, 20)? as usize;
        let type_data = data.get(hdr_len + type_off..hdr_len + type_off + type_len)?;
        let strings = data.get(hdr_len + str_off..hdr_len + str_off + str_len)?.to_vec();

        // Type id 0 is `void` and has no record.
        let mut types = vec![Type {
            kind: 0,
            name_off: 0,
            ref_type: 0,
            members: Vec::new(),
            values: Vec::new(),
        }];
        let mut at = 0;
        while at < type_data.len() {
            let name_off = u32_at(type_data, at)?;
            let info = u32_at(type_data, at + 4)?;
            let size_or_type = u32_at(type_data, at + 8)?;
            at += 12;
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let kind_flag = info >> 31 == 1;
            let mut members = Vec::new();
            let mut values = Vec::new();
            // Bytes that follow the common record, by kind (see the format document).
            let extra = match kind {
                1 | 14 | 17 => 4, // INT, VAR, DECL_TAG
                3 => 12,          // ARRAY
                KIND_STRUCT | KIND_UNION => {
                    for i in 0..vlen {
                        let m = at + i * 12;
                        let offset = u32_at(type_data, m + 8)?;
                        members.push(Member {
                            name_off: u32_at(type_data, m)?,
                            type_id: u32_at(type_data, m + 4)?,
                            // With kind_flag, the top 8 bits hold a bitfield's size.
                            bit_offset: if kind_flag { offset & 0x00ff_ffff } else { offset },
                            bitfield_size: if kind_flag { offset >> 24 } else { 0 },
                        });
                    }
                    vlen * 12
                }
                KIND_ENUM => {
                    for i in 0..vlen {
                        let e = at + i * 8;
                        values.push((
                            u32_at(type_data, e)?,
                            i64::from(u32_at(type_data, e + 4)? as i32),
                        ));
                    }
                    vlen * 8
                }
                KIND_ENUM64 => {
                    for i in 0..vlen {
                        let e = at + i * 12;
                        let value = u64::from(u32_at(type_data, e + 4)?)
                            | u64::from(u32_at(type_data, e + 8)?) << 32;
                        values.push((u32_at(type_data, e)?, value as i64));
                    }
                    vlen * 12
                }
                KIND_FUNC_PROTO => {
                    for i in 0..vlen {
                        let p = at + i * 8;
                        members.push(Member {
                            name_off: u32_at(type_data, p)?,
                            type_id: u32_at(type_data, p + 4)?,
                            bit_offset: 0,
                            bitfield_size: 0,
                        });
                    }
                    vlen * 8
                }
                15 => vlen * 12, // DATASEC
                _ => 0,
            };
            at += extra;
            types.push(Type { kind, name_off, ref_type: size_or_type, members, values });
        }
        Some(Self { types, strings })
    }

    fn name(&self, off: u32) -> &[u8] {
        let rest = self.strings.get(off as usize..).unwrap_or_default();
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        rest.get(..end).unwrap_or_default()
    }

    /// Follows typedefs and qualifiers to the underlying type id.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.types.get(id as usize) {
                Some(t)
                    if matches!(
                        t.kind,
                        KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
                    ) =>
                {
                    id = t.ref_type;
                }
                _ => break,
            }
        }
        id
    }

    fn find_struct(&self, name: &str) -> Option<u32> {
        self.types
            .iter()
            .position(|t| {
                t.kind == KIND_STRUCT
                    && !t.members.is_empty()
                    && self.name(t.name_off) == name.as_bytes()
            })
            .and_then(|i| u32::try_from(i).ok())
    }

    /// Finds `name` among the members of struct/union `id`, looking inside anonymous
    /// members too (at most `MAX_NESTING` deep). Returns (bit offset, member type id).
    /// Member `name` of type `id` (looking into anonymous members): its bit offset, its
    /// type, and its width if it is a bitfield (else 0).
    fn find_member(&self, id: u32, name: &str, depth: u32) -> Option<(u32, u32, u32)> {
        let t = self.types.get(self.resolve(id) as usize)?;
        if depth > MAX_NESTING || !matches!(t.kind, KIND_STRUCT | KIND_UNION) {
            return None;
        }
        for m in &t.members {
            if m.name_off == 0 {
                if let Some((off, ty, size)) = self.find_member(m.type_id, name, depth + 1) {
                    return Some((m.bit_offset + off, ty, size));
                }
            } else if self.name(m.name_off) == name.as_bytes() {
                return Some((m.bit_offset, m.type_id, m.bitfield_size));
            }
        }
        None
    }

    /// The names of function `function`'s parameters, in order, from its prototype.
    pub(crate) fn params(&self, function: &str) -> Result<Vec<String>, Error> {
        let missing = || Error::MissingField(format!("function {function}"));
        let func = self
            .types
            .iter()
            .find(|t| t.kind == KIND_FUNC && self.name(t.name_off) == function.as_bytes())
            .ok_or_else(missing)?;
        let proto = self
            .types
            .get(func.ref_type as usize)
            .filter(|t| t.kind == KIND_FUNC_PROTO)
            .ok_or_else(missing)?;
        Ok(proto
            .members
            .iter()
            .map(|m| String::from_utf8_lossy(self.name(m.name_off)).into_owned())
            .collect())
    }

    /// The value of enumerator `name` in `enum enum_name`.
    pub(crate) fn enum_value(&self, enum_name: &str, name: &str) -> Result<i64, Error> {
        self.types
            .iter()
            .filter(|t| {
                matches!(t.kind, KIND_ENUM | KIND_ENUM64)
                    && self.name(t.name_off) == enum_name.as_bytes()
            })
            .find_map(|t| {
                t.values.iter().find(|(n, _)| self.name(*n) == name.as_bytes()).map(|(_, v)| *v)
            })
            .ok_or_else(|| Error::MissingField(format!("enum {enum_name} value {name}")))
    }

    /// Every enumerator of `enum enum_name`: (name, value); empty when the kernel has no
    /// such enum.
    pub(crate) fn enum_values(&self, enum_name: &str) -> Vec<(String, i64)> {
        self.types
            .iter()
            .filter(|t| {
                matches!(t.kind, KIND_ENUM | KIND_ENUM64)
                    && self.name(t.name_off) == enum_name.as_bytes()
            })
            .flat_map(|t| {
                t.values
                    .iter()
                    .map(|(n, v)| (String::from_utf8_lossy(self.name(*n)).into_owned(), *v))
            })
            .collect()
    }

    /// Byte offset of `path` (e.g. `["__sk_common", "skc_daddr"]`) inside `struct name`.
    pub(crate) fn member_offset(&self, name: &str, path: &[&str]) -> Result<u32, Error> {
        let (bits, width) = self.member_bits(name, path)?;
        if bits % 8 != 0 || width != 0 {
            return Err(Self::missing(name, path)); // a bitfield: see `bitfield`
        }
        Ok(bits / 8)
    }

    /// Where bitfield `path` of `struct name` lies, for one held in a single byte: that
    /// byte's offset, the bit it starts at (from the least significant: x86 and every
    /// little-endian target), and its width in bits.
    pub(crate) fn bitfield(&self, name: &str, path: &[&str]) -> Result<Bitfield, Error> {
        match self.member_bits(name, path)? {
            (bits, width) if width != 0 && bits % 8 + width <= 8 => {
                Ok(Bitfield { byte: bits / 8, shift: bits % 8, width })
            }
            _ => Err(Self::missing(name, path)),
        }
    }

    /// The bit offset of `path` inside `struct name`, and its width if it is a bitfield.
    fn member_bits(&self, name: &str, path: &[&str]) -> Result<(u32, u32), Error> {
        let mut id = self.find_struct(name).ok_or_else(|| Self::missing(name, path))?;
        let (mut bits, mut width) = (0, 0);
        for field in path {
            let (off, ty, size) =
                self.find_member(id, field, 0).ok_or_else(|| Self::missing(name, path))?;
            bits += off;
            id = ty;
            width = size;
        }
        Ok((bits, width))
    }

    fn missing(name: &str, path: &[&str]) -> Error {
        Error::MissingField(format!("struct {name}.{}", path.join(".")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a BTF blob: `struct outer { int a; union { int b; struct { short c; short d; }; }; }`,
    /// an enum, a struct whose anonymous member is itself (not well-formed), and the two
    /// prototypes `tcp_recvmsg` has had.
    fn sample() -> Vec<u8> {
        let strings = b"\0int\0outer\0a\0b\0c\0d\0short\0flags\0FLAG_X\0FLAG_Y\0loop\0sk\0msg\0len\0nonblock\0addr_len\0old_recvmsg\0new_recvmsg\0bits\0lo\0hi\0whole\0".to_vec();
        let s = |name: &str| -> u32 {
            let pos = strings.windows(name.len() + 2).position(|w| {
                w[0] == 0 && &w[1..=name.len()] == name.as_bytes() && w[name.len() + 1] == 0
            });
            pos.map(|p| p as u32 + 1).expect("string present")
        };
        let mut types = Vec::new();
        let mut push = |words: &[u32]| {
            for w in words {
                types.extend_from_slice(&w.to_le_bytes());
            }
        };
        push(&[s("int"), 1 << 24, 4, 32]); // 1: int
        push(&[s("short"), 1 << 24, 2, 16]); // 2: short
        push(&[0, (KIND_STRUCT << 24) | 2, 4, s("c"), 2, 0, s("d"), 2, 16]); // 3: anon struct
        push(&[0, (KIND_UNION << 24) | 2, 4, s("b"), 1, 0, 0, 3, 0]); // 4: anon union
        push(&[s("outer"), (KIND_STRUCT << 24) | 2, 8, s("a"), 1, 0, 0, 4, 32]); // 5: outer
        push(&[s("flags"), (KIND_ENUM << 24) | 2, 4, s("FLAG_X"), 0, s("FLAG_Y"), 7]); // 6: enum
        push(&[s("loop"), (KIND_STRUCT << 24) | 1, 4, 0, 7, 0]); // 7: struct loop { struct loop; }
        let names = ["sk", "msg", "len", "nonblock", "flags", "addr_len"];
        let proto = |params: &[&str]| -> Vec<u32> {
            let mut words = vec![0, (KIND_FUNC_PROTO << 24) | params.len() as u32, 1];
            for p in params {
                words.extend([s(p), 1]);
            }
            words
        };
        push(&proto(&names)); // 8: before 5.19
        push(&[s("old_recvmsg"), KIND_FUNC << 24, 8]); // 9
        push(&proto(&[names[0], names[1], names[2], names[4], names[5]])); // 10: 5.19 on
        push(&[s("new_recvmsg"), KIND_FUNC << 24, 10]); // 11

        // 12: struct bits { u16 pad; u8 lo:5, hi:3; int whole; }, with kind_flag (as pahole
        // writes a struct with bitfields): a member's offset word holds its width on top.
        push(&[
            s("bits"),
            (1 << 31) | (KIND_STRUCT << 24) | 3,
            8,
            s("lo"),
            2,
            (5 << 24) | 16,
            s("hi"),
            2,
            (3 << 24) | 21,
            s("whole"),
            1,
            32,
        ]);
        let mut blob = Vec::new();
        blob.extend_from_slice(&BTF_MAGIC.to_le_bytes());
        blob.extend_from_slice(&[1, 0]);
        for w in [24u32, 0, types.len() as u32, types.len() as u32, strings.len() as u32] {
            blob.extend_from_slice(&w.to_le_bytes());
        }
        blob.extend_from_slice(&types);
        blob.extend_from_slice(&strings);
        blob
    }

    #[test]
    fn finds_members_through_anonymous_unions_and_structs() {
        let btf = Btf::parse(&sample()).expect("valid sample");
        assert_eq!(btf.member_offset("outer", &["a"]).ok(), Some(0));
        assert_eq!(btf.member_offset("outer", &["b"]).ok(), Some(4));
        assert_eq!(btf.member_offset("outer", &["c"]).ok(), Some(4));
        assert_eq!(btf.member_offset("outer", &["d"]).ok(), Some(6));
        assert!(btf.member_offset("outer", &["nope"]).is_err());
        assert!(btf.member_offset("nostruct", &["a"]).is_err());
        assert_eq!(btf.enum_value("flags", "FLAG_Y").ok(), Some(7));
        assert_eq!(btf.enum_value("flags", "FLAG_X").ok(), Some(0));
        assert!(btf.enum_value("flags", "FLAG_Z").is_err());
        assert_eq!(
            btf.enum_values("flags"),
            [("FLAG_X".to_string(), 0), ("FLAG_Y".to_string(), 7)]
        );
        assert!(btf.enum_values("no_such_enum").is_empty());
    }

    /// icsk_ca_state is such a bitfield: where it lies, and that it is no plain member.
    #[test]
    fn bitfields_within_a_byte_are_found_with_their_shift_and_width() {
        let btf = Btf::parse(&sample()).expect("valid sample");
        assert_eq!(
            btf.bitfield("bits", &["lo"]).ok(),
            Some(Bitfield { byte: 2, shift: 0, width: 5 })
        );
        assert_eq!(
            btf.bitfield("bits", &["hi"]).ok(),
            Some(Bitfield { byte: 2, shift: 5, width: 3 })
        );
        assert!(btf.member_offset("bits", &["lo"]).is_err());
        assert!(btf.bitfield("bits", &["whole"]).is_err());
        assert_eq!(btf.member_offset("bits", &["whole"]).ok(), Some(4));
    }

    #[test]
    fn a_member_loop_is_a_missing_member_not_a_crash() {
        let btf = Btf::parse(&sample()).expect("valid sample");
        assert!(btf.member_offset("loop", &["x"]).is_err());
    }

    /// `tcp_recvmsg` lost its `nonblock` argument in 5.19: `flags` moved, and so did an
    /// fexit program's return value.
    #[test]
    fn recvmsg_argument_positions_follow_the_prototype() {
        use crate::loader::RecvmsgArgs;
        let btf = Btf::parse(&sample()).expect("valid sample");
        assert_eq!(
            btf.params("new_recvmsg").expect("params"),
            ["sk", "msg", "len", "flags", "addr_len"]
        );
        assert_eq!(
            crate::loader::recvmsg_args(&btf, "old_recvmsg").ok(),
            Some(RecvmsgArgs { flags: 4, count: 6 })
        );
        assert_eq!(
            crate::loader::recvmsg_args(&btf, "new_recvmsg").ok(),
            Some(RecvmsgArgs { flags: 3, count: 5 })
        );
        assert!(crate::loader::recvmsg_args(&btf, "no_such_function").is_err());
        // Each prototype has its programs; an unknown one has none.
        assert_eq!(
            RecvmsgArgs { flags: 3, count: 5 }.programs(),
            Ok(("tt_recv_fexit", "tt_recv_kp"))
        );
        assert_eq!(
            RecvmsgArgs { flags: 4, count: 6 }.programs(),
            Ok(("tt_recv_fexit6", "tt_recv_kp6"))
        );
        assert_eq!(
            RecvmsgArgs { flags: 3, count: 4 }.programs(),
            Ok(("tt_recv_fexit4", "tt_recv_kp"))
        );
        assert!(RecvmsgArgs { flags: 2, count: 4 }.programs().is_err());
    }

    #[test]
    fn rejects_garbage() {
        assert!(Btf::parse(b"not btf at all, definitely not").is_none());
        assert!(Btf::parse(&[]).is_none());
        let mut truncated = sample();
        truncated.truncate(40);
        assert!(Btf::parse(&truncated).is_none());
    }
}
