//! Runtime metadata (V14, V15) read at run time with `frame-metadata`, storage keys built from
//! pallet and item names and their hashers, and SCALE values decoded by type id against the
//! metadata's `scale-info` registry into [`DValue`], then to JSON in polkadot.js's
//! `toPrimitive()` shape (what PANIC's sidecar answered): struct fields camelCase, enums whose
//! variants all lack data as their name, other enums as `{"<lowerCamel variant>": …}`,
//! `Option` as the value or `null`, byte arrays and vectors as `0x` hex, account ids in SS58,
//! integers exact at any size.
//!
//! Hostile input (metadata, values, keys) gives a [`DecodeError`], never a panic: every read is
//! bounds-checked, recursion is bounded, and a value must consume exactly its bytes.

use std::collections::HashMap;

use blake2::digest::Digest;
use frame_metadata::v14::{StorageEntryModifier, StorageEntryType, StorageHasher};
use frame_metadata::{RuntimeMetadata, RuntimeMetadataPrefixed};
use parity_scale_codec::Decode;
use scale_info::form::PortableForm;
use scale_info::{PortableRegistry, Type, TypeDef, TypeDefPrimitive};
use serde_json::{Map, Value};

/// Why metadata, a key or a value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The metadata bytes are not metadata of a supported version.
    #[error("metadata: {0}")]
    Metadata(String),
    /// A value does not decode as its type.
    #[error("value of type {ty}: {problem}")]
    Value {
        /// The type id.
        ty: u32,
        /// What is wrong.
        problem: String,
    },
    /// The pallet or item is not in the metadata.
    #[error("`{0}` is not in the runtime metadata")]
    Missing(String),
    /// Not valid hex.
    #[error("not hex: {0}")]
    Hex(String),
}

/// How deep a value may nest before it is refused (real runtime types nest far less).
const MAX_DEPTH: usize = 64;

/// A storage item's shape.
#[derive(Debug, Clone)]
pub struct StorageItem {
    /// The pallet's storage prefix.
    pub prefix: String,
    /// The item name.
    pub name: String,
    /// Whether an unset key reads as `default` (ValueQuery) or as none (OptionQuery).
    pub has_default: bool,
    /// The hashers of the map keys (empty for a plain value).
    pub hashers: Vec<StorageHasher>,
    /// The type id of each map key (one per hasher).
    pub key_tys: Vec<u32>,
    /// The value's type id.
    pub value_ty: u32,
    /// The default value's SCALE bytes.
    pub default: Vec<u8>,
}

/// A pallet's constant.
#[derive(Debug, Clone)]
struct Constant {
    ty: u32,
    value: Vec<u8>,
}

#[derive(Debug, Clone, Default)]
struct Pallet {
    index: u8,
    storage: HashMap<String, StorageItem>,
    constants: HashMap<String, Constant>,
    event_ty: Option<u32>,
}

/// One runtime's metadata, with lookups by pallet and item name.
#[derive(Debug, Clone)]
pub struct Metadata {
    version: u32,
    types: PortableRegistry,
    pallets: HashMap<String, Pallet>,
}

impl Metadata {
    /// Decodes `RuntimeMetadataPrefixed` bytes (`state_getMetadata`), V14 or V15.
    pub fn from_bytes(bytes: &[u8]) -> Result<Metadata, DecodeError> {
        let prefixed = RuntimeMetadataPrefixed::decode(&mut &bytes[..])
            .map_err(|e| DecodeError::Metadata(e.to_string()))?;
        if prefixed.0 != frame_metadata::META_RESERVED {
            return Err(DecodeError::Metadata("no `meta` magic".to_owned()));
        }
        match prefixed.1 {
            RuntimeMetadata::V14(m) => Ok(Self::build(
                14,
                m.types,
                m.pallets.into_iter().map(|p| {
                    (
                        p.name,
                        p.index,
                        p.storage,
                        p.constants.into_iter().map(|c| (c.name, c.ty.id, c.value)),
                        p.event.map(|e| e.ty.id),
                    )
                }),
            )),
            RuntimeMetadata::V15(m) => Ok(Self::build(
                15,
                m.types,
                m.pallets.into_iter().map(|p| {
                    (
                        p.name,
                        p.index,
                        p.storage,
                        p.constants.into_iter().map(|c| (c.name, c.ty.id, c.value)),
                        p.event.map(|e| e.ty.id),
                    )
                }),
            )),
            other => Err(DecodeError::Metadata(format!(
                "metadata version {} is not supported (V14, V15 are)",
                other.version()
            ))),
        }
    }

    /// From `0x…` hex (the `state_getMetadata` answer).
    pub fn from_hex(hex_str: &str) -> Result<Metadata, DecodeError> {
        Self::from_bytes(&parse_hex(hex_str)?)
    }

    fn build<C>(
        version: u32,
        types: PortableRegistry,
        pallets: impl Iterator<
            Item = (
                String,
                u8,
                Option<frame_metadata::v14::PalletStorageMetadata<PortableForm>>,
                C,
                Option<u32>,
            ),
        >,
    ) -> Metadata
    where
        C: Iterator<Item = (String, u32, Vec<u8>)>,
    {
        let mut out = HashMap::new();
        for (name, index, storage, constants, event_ty) in pallets {
            let mut pallet = Pallet {
                index,
                event_ty,
                ..Pallet::default()
            };
            if let Some(storage) = storage {
                for e in storage.entries {
                    let (hashers, key_tys, value_ty) = match e.ty {
                        StorageEntryType::Plain(v) => (Vec::new(), Vec::new(), v.id),
                        StorageEntryType::Map {
                            hashers,
                            key,
                            value,
                        } => {
                            let key_tys = if hashers.len() == 1 {
                                vec![key.id]
                            } else {
                                match types.resolve(key.id).map(|t| &t.type_def) {
                                    Some(TypeDef::Tuple(t)) => {
                                        t.fields.iter().map(|f| f.id).collect()
                                    }
                                    _ => vec![key.id],
                                }
                            };
                            (hashers, key_tys, value.id)
                        }
                    };
                    pallet.storage.insert(
                        e.name.clone(),
                        StorageItem {
                            prefix: storage.prefix.clone(),
                            name: e.name,
                            has_default: matches!(e.modifier, StorageEntryModifier::Default),
                            hashers,
                            key_tys,
                            value_ty,
                            default: e.default,
                        },
                    );
                }
            }
            for (cname, ty, value) in constants {
                pallet.constants.insert(cname, Constant { ty, value });
            }
            out.insert(name, pallet);
        }
        Metadata {
            version,
            types,
            pallets: out,
        }
    }

    /// The metadata version (14 or 15).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// Whether the runtime has the pallet.
    pub fn has_pallet(&self, pallet: &str) -> bool {
        self.pallets.contains_key(pallet)
    }

    /// The pallet's index in the runtime (its variant index in `RuntimeEvent`).
    pub fn pallet_index(&self, pallet: &str) -> Option<u8> {
        self.pallets.get(pallet).map(|p| p.index)
    }

    /// The storage item, if the runtime has it.
    pub fn storage(&self, pallet: &str, item: &str) -> Option<&StorageItem> {
        self.pallets.get(pallet)?.storage.get(item)
    }

    /// Whether the runtime has the constant.
    pub fn has_constant(&self, pallet: &str, name: &str) -> bool {
        self.pallets
            .get(pallet)
            .is_some_and(|p| p.constants.contains_key(name))
    }

    /// A constant's decoded value, if the runtime has it.
    pub fn constant(&self, pallet: &str, name: &str) -> Option<Result<DValue, DecodeError>> {
        let c = self.pallets.get(pallet)?.constants.get(name)?;
        Some(self.decode(c.ty, &c.value))
    }

    /// The storage key of `pallet.item` with its map keys `keys` (each already SCALE-encoded),
    /// or the prefix of a partial key when fewer keys than hashers are given.
    pub fn storage_key(
        &self,
        pallet: &str,
        item: &str,
        keys: &[&[u8]],
    ) -> Result<Vec<u8>, DecodeError> {
        let entry = self
            .storage(pallet, item)
            .ok_or_else(|| DecodeError::Missing(format!("{pallet}.{item}")))?;
        if keys.len() > entry.hashers.len() {
            return Err(DecodeError::Missing(format!(
                "{pallet}.{item} with {} keys",
                keys.len()
            )));
        }
        let mut key = twox_128(entry.prefix.as_bytes()).to_vec();
        key.extend_from_slice(&twox_128(entry.name.as_bytes()));
        for (hasher, k) in entry.hashers.iter().zip(keys) {
            key.extend(hash(hasher, k));
        }
        Ok(key)
    }

    /// The storage key of `pallet.item` with typed map keys, each encoded as the metadata's key
    /// type (an integer at the width of its primitive, an account id as its 32 bytes).
    pub fn key(&self, pallet: &str, item: &str, args: &[KeyArg]) -> Result<Vec<u8>, DecodeError> {
        let entry = self
            .storage(pallet, item)
            .ok_or_else(|| DecodeError::Missing(format!("{pallet}.{item}")))?;
        let mut encoded = Vec::with_capacity(args.len());
        for (arg, ty) in args.iter().zip(entry.key_tys.iter()) {
            encoded.push(self.encode_arg(*ty, arg, 0)?);
        }
        if encoded.len() != args.len() {
            return Err(DecodeError::Missing(format!(
                "{pallet}.{item} with {} keys",
                args.len()
            )));
        }
        let parts: Vec<&[u8]> = encoded.iter().map(Vec::as_slice).collect();
        self.storage_key(pallet, item, &parts)
    }

    fn encode_arg(&self, ty: u32, arg: &KeyArg, depth: usize) -> Result<Vec<u8>, DecodeError> {
        let bad = |p: &str| DecodeError::Value {
            ty,
            problem: p.to_owned(),
        };
        if depth > MAX_DEPTH {
            return Err(bad("nested too deeply"));
        }
        let t = self
            .types
            .resolve(ty)
            .ok_or_else(|| bad("type id not in the registry"))?;
        match (&t.type_def, arg) {
            (TypeDef::Composite(c), _) if c.fields.len() == 1 => {
                self.encode_arg(c.fields[0].ty.id, arg, depth + 1)
            }
            (TypeDef::Composite(_), KeyArg::Account(a)) => Ok(a.to_vec()),
            (TypeDef::Array(a), KeyArg::Account(acc)) if a.len == 32 => Ok(acc.to_vec()),
            (TypeDef::Primitive(p), KeyArg::Int(v)) => {
                let width = match p {
                    TypeDefPrimitive::U8 => 1,
                    TypeDefPrimitive::U16 => 2,
                    TypeDefPrimitive::U32 => 4,
                    TypeDefPrimitive::U64 => 8,
                    TypeDefPrimitive::U128 => 16,
                    _ => return Err(bad("key is not an unsigned integer")),
                };
                let bytes = v.to_le_bytes();
                if bytes[width..].iter().any(|b| *b != 0) {
                    return Err(bad("key does not fit its integer type"));
                }
                Ok(bytes[..width].to_vec())
            }
            _ => Err(bad("key argument does not match the key type")),
        }
    }

    /// Decodes a storage value: `None` when unset and the item has no default; an unset
    /// ValueQuery item reads as its default.
    pub fn decode_storage(
        &self,
        pallet: &str,
        item: &str,
        bytes: Option<&[u8]>,
    ) -> Result<Option<DValue>, DecodeError> {
        let entry = self
            .storage(pallet, item)
            .ok_or_else(|| DecodeError::Missing(format!("{pallet}.{item}")))?;
        match bytes {
            Some(b) => self.decode(entry.value_ty, b).map(Some),
            None if entry.has_default => self.decode(entry.value_ty, &entry.default).map(Some),
            None => Ok(None),
        }
    }

    /// Decodes `bytes` as type `ty`; every byte must be consumed.
    pub fn decode(&self, ty: u32, bytes: &[u8]) -> Result<DValue, DecodeError> {
        let mut input = bytes;
        let decoder = Decoder {
            types: &self.types,
            budget: std::cell::Cell::new(value_budget(bytes.len())),
        };
        let value = decoder.value(ty, &mut input, 0)?;
        if !input.is_empty() {
            return Err(DecodeError::Value {
                ty,
                problem: format!("{} bytes left over", input.len()),
            });
        }
        Ok(value)
    }

    /// The type id of the pallet's event enum.
    pub fn event_ty(&self, pallet: &str) -> Option<u32> {
        self.pallets.get(pallet)?.event_ty
    }

    /// Every (pallet, storage item) and every (pallet, constant), for the fuzz targets.
    #[cfg(feature = "fuzzing")]
    #[allow(clippy::type_complexity)]
    pub(crate) fn names(&self) -> (Vec<(String, String)>, Vec<(String, String)>) {
        let mut items = Vec::new();
        let mut constants = Vec::new();
        for (pallet, p) in &self.pallets {
            items.extend(p.storage.keys().map(|i| (pallet.clone(), i.clone())));
            constants.extend(p.constants.keys().map(|c| (pallet.clone(), c.clone())));
        }
        items.sort();
        constants.sort();
        (items, constants)
    }

    /// The number of types in the registry, for the fuzz targets.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn type_count(&self) -> u32 {
        u32::try_from(self.types.types.len()).unwrap_or(u32::MAX)
    }
}

/// A map key argument, encoded as the item's key type says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyArg {
    /// An unsigned integer (era, session, index, track, page).
    Int(u128),
    /// An account id.
    Account([u8; 32]),
}

/// A decoded SCALE value, keeping what JSON rendering needs (field and variant names, which
/// byte strings are account ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DValue {
    /// `bool`
    Bool(bool),
    /// `str`, `char`
    Str(String),
    /// An unsigned integer up to 128 bits.
    UInt(u128),
    /// A signed integer up to 128 bits.
    Int(i128),
    /// A 256-bit integer, as little-endian bytes (rendered as hex; no runtime item read here
    /// has one).
    Wide(Vec<u8>),
    /// A `u8` array or vector.
    Bytes(Vec<u8>),
    /// An `AccountId32`.
    Account([u8; 32]),
    /// A sequence, array or tuple.
    Seq(Vec<DValue>),
    /// A struct with named fields.
    Struct(Vec<(String, DValue)>),
    /// An enum variant; `basic` when no variant of the enum carries data.
    Variant {
        /// The variant name.
        name: String,
        /// Whether no variant of the type has fields.
        basic: bool,
        /// The variant's fields: `None` for none, a struct, a sequence or a single value.
        value: Option<Box<DValue>>,
    },
    /// `None` of an `Option`.
    Null,
}

impl DValue {
    /// An unsigned integer's value.
    pub fn as_u128(&self) -> Option<u128> {
        match self {
            DValue::UInt(v) => Some(*v),
            DValue::Int(v) => u128::try_from(*v).ok(),
            _ => None,
        }
    }

    /// A struct field.
    pub fn field(&self, name: &str) -> Option<&DValue> {
        match self {
            DValue::Struct(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The items of a sequence.
    pub fn items(&self) -> Option<&[DValue]> {
        match self {
            DValue::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The variant name and its value.
    pub fn variant(&self) -> Option<(&str, Option<&DValue>)> {
        match self {
            DValue::Variant { name, value, .. } => Some((name, value.as_deref())),
            _ => None,
        }
    }

    /// Account id bytes.
    pub fn account(&self) -> Option<&[u8; 32]> {
        match self {
            DValue::Account(a) => Some(a),
            _ => None,
        }
    }

    /// polkadot.js `toPrimitive()`-style JSON, accounts in SS58 with `ss58_format`.
    pub fn to_json(&self, ss58_format: u16) -> Value {
        match self {
            DValue::Bool(b) => Value::Bool(*b),
            DValue::Str(s) => Value::String(s.clone()),
            DValue::UInt(v) => uint_json(*v),
            DValue::Int(v) => serde_json::from_str::<serde_json::Number>(&v.to_string())
                .map_or(Value::Null, Value::Number),
            DValue::Wide(b) | DValue::Bytes(b) => Value::String(format!("0x{}", hex::encode(b))),
            DValue::Account(a) => Value::String(ss58_encode(a, ss58_format)),
            DValue::Seq(items) => {
                Value::Array(items.iter().map(|v| v.to_json(ss58_format)).collect())
            }
            DValue::Struct(fields) => {
                let mut m = Map::new();
                for (n, v) in fields {
                    m.insert(field_name(n), v.to_json(ss58_format));
                }
                Value::Object(m)
            }
            DValue::Variant { name, basic, value } => {
                if *basic {
                    return Value::String(name.clone());
                }
                let mut m = Map::new();
                m.insert(
                    lower_first(name),
                    value
                        .as_ref()
                        .map_or(Value::Null, |v| v.to_json(ss58_format)),
                );
                Value::Object(m)
            }
            DValue::Null => Value::Null,
        }
    }
}

/// An unsigned integer as an exact JSON integer.
pub(crate) fn uint_json(v: u128) -> Value {
    serde_json::from_str::<serde_json::Number>(&v.to_string()).map_or(Value::Null, Value::Number)
}

/// snake_case → camelCase, as polkadot.js names struct fields (`hash` → `hash_`, its reserved
/// name).
fn field_name(name: &str) -> String {
    if name == "hash" {
        return "hash_".to_owned();
    }
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn lower_first(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

struct Decoder<'a> {
    types: &'a PortableRegistry,
    /// How many more values this decode may make (issue #16): a sequence of items that take no
    /// bytes (`()`, an empty struct, nested) lets a few input bytes ask for billions of values, so
    /// the count is bounded by the input's length ([`value_budget`]).
    budget: std::cell::Cell<usize>,
}

/// Values one decode of `input_len` bytes may make: every value but those of zero-sized types takes
/// at least one byte, so 16 per byte (plus a floor for small inputs) is far above any real value
/// and keeps a hostile node's few bytes from costing more than a few times their length.
const fn value_budget(input_len: usize) -> usize {
    input_len.saturating_mul(16).saturating_add(4096)
}

impl Decoder<'_> {
    fn ty(&self, id: u32) -> Result<&Type<PortableForm>, DecodeError> {
        self.types.resolve(id).ok_or(DecodeError::Value {
            ty: id,
            problem: "type id not in the registry".to_owned(),
        })
    }

    fn value(&self, id: u32, input: &mut &[u8], depth: usize) -> Result<DValue, DecodeError> {
        let err = |problem: &str| DecodeError::Value {
            ty: id,
            problem: problem.to_owned(),
        };
        if depth > MAX_DEPTH {
            return Err(err("nested too deeply"));
        }
        match self.budget.get().checked_sub(1) {
            Some(left) => self.budget.set(left),
            None => {
                return Err(err(
                    "more values than the input's length allows (the cap per decode)",
                ))
            }
        }
        let ty = self.ty(id)?;
        let path = &ty.path.segments;
        match &ty.type_def {
            TypeDef::Composite(c) => {
                if path.last().is_some_and(|s| s == "AccountId32") {
                    let bytes = take(input, 32).map_err(|()| err("truncated account id"))?;
                    let mut a = [0u8; 32];
                    a.copy_from_slice(bytes);
                    return Ok(DValue::Account(a));
                }
                self.fields(id, &c.fields, input, depth)
            }
            TypeDef::Variant(v) => {
                let index = *take(input, 1)
                    .map_err(|()| err("truncated variant index"))?
                    .first()
                    .ok_or_else(|| err("truncated variant index"))?;
                let variant = v
                    .variants
                    .iter()
                    .find(|x| x.index == index)
                    .ok_or_else(|| err(&format!("no variant with index {index}")))?;
                if path.len() == 1 && path[0] == "Option" {
                    return match variant.fields.first() {
                        None => Ok(DValue::Null),
                        Some(f) => self.value(f.ty.id, input, depth + 1),
                    };
                }
                let basic = v.variants.iter().all(|x| x.fields.is_empty());
                let value = if variant.fields.is_empty() {
                    None
                } else {
                    Some(Box::new(self.fields(id, &variant.fields, input, depth)?))
                };
                Ok(DValue::Variant {
                    name: variant.name.clone(),
                    basic,
                    value,
                })
            }
            TypeDef::Sequence(s) => {
                let len = compact(input).map_err(|()| err("truncated length"))?;
                let len = usize::try_from(len).map_err(|_| err("length too large"))?;
                self.items(id, s.type_param.id, len, input, depth)
            }
            TypeDef::Array(a) => {
                let len = usize::try_from(a.len).map_err(|_| err("length too large"))?;
                self.items(id, a.type_param.id, len, input, depth)
            }
            TypeDef::Tuple(t) => {
                let mut items = Vec::with_capacity(t.fields.len());
                for f in &t.fields {
                    items.push(self.value(f.id, input, depth + 1)?);
                }
                Ok(DValue::Seq(items))
            }
            TypeDef::Primitive(p) => primitive(p, input).map_err(|p| err(&p)),
            TypeDef::Compact(_) => {
                let v = compact(input).map_err(|()| err("truncated compact"))?;
                Ok(DValue::UInt(v))
            }
            TypeDef::BitSequence(b) => {
                let bits = compact(input).map_err(|()| err("truncated length"))?;
                let store = match &self.ty(b.bit_store_type.id)?.type_def {
                    TypeDef::Primitive(TypeDefPrimitive::U16) => 16,
                    TypeDef::Primitive(TypeDefPrimitive::U32) => 32,
                    TypeDef::Primitive(TypeDefPrimitive::U64) => 64,
                    _ => 8,
                };
                let words = bits.div_ceil(store);
                let n = usize::try_from(words * (store / 8)).map_err(|_| err("too long"))?;
                let bytes = take(input, n).map_err(|()| err("truncated bits"))?;
                Ok(DValue::Bytes(bytes.to_vec()))
            }
        }
    }

    fn items(
        &self,
        id: u32,
        item: u32,
        len: usize,
        input: &mut &[u8],
        depth: usize,
    ) -> Result<DValue, DecodeError> {
        if matches!(
            self.ty(item)?.type_def,
            TypeDef::Primitive(TypeDefPrimitive::U8)
        ) {
            let bytes = take(input, len).map_err(|()| DecodeError::Value {
                ty: id,
                problem: "truncated bytes".to_owned(),
            })?;
            return Ok(DValue::Bytes(bytes.to_vec()));
        }
        // Every item takes at least one byte in practice; bound the allocation by the input.
        let mut items = Vec::with_capacity(len.min(input.len()));
        for _ in 0..len {
            items.push(self.value(item, input, depth + 1)?);
        }
        Ok(DValue::Seq(items))
    }

    fn fields(
        &self,
        _id: u32,
        fields: &[scale_info::Field<PortableForm>],
        input: &mut &[u8],
        depth: usize,
    ) -> Result<DValue, DecodeError> {
        if fields.len() == 1 && fields[0].name.is_none() {
            return self.value(fields[0].ty.id, input, depth + 1);
        }
        if fields.iter().all(|f| f.name.is_some()) {
            let mut out = Vec::with_capacity(fields.len());
            for f in fields {
                let v = self.value(f.ty.id, input, depth + 1)?;
                out.push((f.name.clone().unwrap_or_default(), v));
            }
            return Ok(DValue::Struct(out));
        }
        let mut out = Vec::with_capacity(fields.len());
        for f in fields {
            out.push(self.value(f.ty.id, input, depth + 1)?);
        }
        Ok(DValue::Seq(out))
    }
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], ()> {
    if input.len() < n {
        return Err(());
    }
    let (head, rest) = input.split_at(n);
    *input = rest;
    Ok(head)
}

fn le_uint(input: &mut &[u8], n: usize) -> Result<u128, String> {
    let bytes = take(input, n).map_err(|()| format!("truncated {}-byte integer", n))?;
    Ok(bytes
        .iter()
        .rev()
        .fold(0u128, |acc, b| (acc << 8) | u128::from(*b)))
}

fn primitive(p: &TypeDefPrimitive, input: &mut &[u8]) -> Result<DValue, String> {
    let signed = |input: &mut &[u8], n: usize| -> Result<DValue, String> {
        let raw = le_uint(input, n)?;
        let bits = n * 8;
        let v = if bits == 128 {
            raw as i128
        } else if raw >> (bits - 1) & 1 == 1 {
            (raw as i128) - (1i128 << bits)
        } else {
            raw as i128
        };
        Ok(DValue::Int(v))
    };
    match p {
        TypeDefPrimitive::Bool => match take(input, 1).map_err(|()| "truncated bool")?[0] {
            0 => Ok(DValue::Bool(false)),
            1 => Ok(DValue::Bool(true)),
            b => Err(format!("bool byte {b}")),
        },
        TypeDefPrimitive::Char => {
            let v = le_uint(input, 4)?;
            let c = u32::try_from(v)
                .ok()
                .and_then(char::from_u32)
                .ok_or("invalid char")?;
            Ok(DValue::Str(c.to_string()))
        }
        TypeDefPrimitive::Str => {
            let len = compact(input).map_err(|()| "truncated length")?;
            let len = usize::try_from(len).map_err(|_| "length too large")?;
            let bytes = take(input, len).map_err(|()| "truncated string")?;
            Ok(DValue::Str(
                String::from_utf8(bytes.to_vec()).map_err(|_| "string not UTF-8")?,
            ))
        }
        TypeDefPrimitive::U8 => Ok(DValue::UInt(le_uint(input, 1)?)),
        TypeDefPrimitive::U16 => Ok(DValue::UInt(le_uint(input, 2)?)),
        TypeDefPrimitive::U32 => Ok(DValue::UInt(le_uint(input, 4)?)),
        TypeDefPrimitive::U64 => Ok(DValue::UInt(le_uint(input, 8)?)),
        TypeDefPrimitive::U128 => Ok(DValue::UInt(le_uint(input, 16)?)),
        TypeDefPrimitive::I8 => signed(input, 1),
        TypeDefPrimitive::I16 => signed(input, 2),
        TypeDefPrimitive::I32 => signed(input, 4),
        TypeDefPrimitive::I64 => signed(input, 8),
        TypeDefPrimitive::I128 => signed(input, 16),
        TypeDefPrimitive::U256 | TypeDefPrimitive::I256 => Ok(DValue::Wide(
            take(input, 32)
                .map_err(|()| "truncated 256-bit integer")?
                .to_vec(),
        )),
    }
}

/// SCALE compact integer.
fn compact(input: &mut &[u8]) -> Result<u128, ()> {
    let first = *take(input, 1)?.first().ok_or(())?;
    match first & 0b11 {
        0 => Ok(u128::from(first >> 2)),
        1 => {
            let b = take(input, 1)?;
            Ok((u128::from(b[0]) << 6) | u128::from(first >> 2))
        }
        2 => {
            let b = take(input, 3)?;
            Ok(
                ((u128::from(b[2]) << 22) | (u128::from(b[1]) << 14) | (u128::from(b[0]) << 6))
                    | u128::from(first >> 2),
            )
        }
        _ => {
            let n = usize::from(first >> 2) + 4;
            if n > 16 {
                return Err(());
            }
            let b = take(input, n)?;
            Ok(b.iter()
                .rev()
                .fold(0u128, |acc, x| (acc << 8) | u128::from(*x)))
        }
    }
}

/// `xxhash64` seeds 0 and 1, little-endian: the storage prefix hash.
pub(crate) fn twox_128(data: &[u8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&twox_hash::XxHash64::oneshot(0, data).to_le_bytes());
    out[8..].copy_from_slice(&twox_hash::XxHash64::oneshot(1, data).to_le_bytes());
    out
}

/// BLAKE2b with a 16- or 32-byte output.
fn blake2b_128(data: &[u8]) -> Vec<u8> {
    blake2::Blake2b128::digest(data).to_vec()
}

/// BLAKE2b-256 (a `Bounded::Inline` call's hash).
pub(crate) fn blake2b_256(data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&blake2::Blake2b256::digest(data));
    out
}

/// A map key part hashed with `hasher`.
fn hash(hasher: &StorageHasher, data: &[u8]) -> Vec<u8> {
    match hasher {
        StorageHasher::Blake2_128 => blake2b_128(data),
        StorageHasher::Blake2_256 => blake2b_256(data).to_vec(),
        StorageHasher::Blake2_128Concat => {
            let mut v = blake2b_128(data);
            v.extend_from_slice(data);
            v
        }
        StorageHasher::Twox128 => twox_128(data).to_vec(),
        StorageHasher::Twox256 => {
            let mut v = Vec::with_capacity(32);
            for seed in 0..4 {
                v.extend_from_slice(&twox_hash::XxHash64::oneshot(seed, data).to_le_bytes());
            }
            v
        }
        StorageHasher::Twox64Concat => {
            let mut v = twox_hash::XxHash64::oneshot(0, data).to_le_bytes().to_vec();
            v.extend_from_slice(data);
            v
        }
        StorageHasher::Identity => data.to_vec(),
    }
}

/// `0x…` hex to bytes.
pub(crate) fn parse_hex(s: &str) -> Result<Vec<u8>, DecodeError> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    hex::decode(s).map_err(|e| DecodeError::Hex(e.to_string()))
}

/// An account id in SS58 with `format` (prefix 0–16383; checksum: the first two bytes of
/// BLAKE2b-512 of `"SS58PRE" ++ prefix ++ id`).
pub fn ss58_encode(account: &[u8; 32], format: u16) -> String {
    let format = format & 0b0011_1111_1111_1111;
    let mut data = if format < 64 {
        vec![format as u8]
    } else {
        vec![
            ((format & 0b0000_0000_1111_1100) as u8 >> 2) | 0b0100_0000,
            (format >> 8) as u8 | ((format & 0b0000_0000_0000_0011) as u8) << 6,
        ]
    };
    data.extend_from_slice(account);
    let mut hasher = blake2::Blake2b512::new();
    hasher.update(b"SS58PRE");
    hasher.update(&data);
    let checksum = hasher.finalize();
    data.extend_from_slice(&checksum[..2]);
    bs58::encode(data).into_string()
}

/// An SS58 address's account id (any format), checksum verified.
pub fn ss58_decode(address: &str) -> Option<[u8; 32]> {
    let data = bs58::decode(address.trim()).into_vec().ok()?;
    let prefix_len = match data.first()? {
        0..=63 => 1,
        64..=127 => 2,
        _ => return None,
    };
    if data.len() != prefix_len + 32 + 2 {
        return None;
    }
    let mut hasher = blake2::Blake2b512::new();
    hasher.update(b"SS58PRE");
    hasher.update(&data[..prefix_len + 32]);
    let checksum = hasher.finalize();
    if checksum[..2] != data[prefix_len + 32..] {
        return None;
    }
    let mut a = [0u8; 32];
    a.copy_from_slice(&data[prefix_len..prefix_len + 32]);
    Some(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twox_prefixes_are_substrates() {
        // twox128("System") ++ twox128("Number"), the well-known key.
        let mut k = twox_128(b"System").to_vec();
        k.extend(twox_128(b"Number"));
        assert_eq!(
            hex::encode(k),
            "26aa394eea5630e07c48ae0c9558cef702a5c1b19ab7a04f536c519aca4983ac"
        );
    }

    #[test]
    fn ss58_round_trips() {
        let a = ss58_decode("5C5sJnAedLpnBCnvjAV3Fg31FpvUvEvvWzcsooYwBW8dNsTt").unwrap();
        assert_eq!(
            ss58_encode(&a, 42),
            "5C5sJnAedLpnBCnvjAV3Fg31FpvUvEvvWzcsooYwBW8dNsTt"
        );
        assert!(ss58_decode("5C5sJnAedLpnBCnvjAV3Fg31FpvUvEvvWzcsooYwBW8dNsTu").is_none());
        assert!(ss58_decode("").is_none());
    }

    /// Issue #16: `Vec<Vec<()>>` with huge lengths is a few input bytes asking for billions of
    /// values that take no bytes; the decode stops at its value budget with an error.
    #[test]
    fn sequences_of_zero_sized_items_are_bounded_by_the_input() {
        let mut registry = scale_info::Registry::new();
        let ty = registry
            .register_type(&scale_info::meta_type::<Vec<Vec<()>>>())
            .id;
        let types: PortableRegistry = registry.into();
        let decode = |bytes: &[u8]| {
            let mut input = bytes;
            Decoder {
                types: &types,
                budget: std::cell::Cell::new(value_budget(bytes.len())),
            }
            .value(ty, &mut input, 0)
        };
        // 2 outer items of 3 empty items each: fine.
        let small = decode(&[0x08, 0x0c, 0x0c]).unwrap();
        assert_eq!(small.items().map(<[DValue]>::len), Some(2));
        // Compact 2^30 - 1 outer items (4 bytes), each of 2^30 - 1 empty items: without the budget
        // this allocates until the process dies.
        let hostile = [0xfe, 0xff, 0xff, 0xff, 0xfe, 0xff, 0xff, 0xff];
        let err = decode(&hostile).unwrap_err().to_string();
        assert!(err.contains("the cap per decode"), "{err}");
    }

    #[test]
    fn compact_and_truncation_are_errors_not_panics() {
        assert_eq!(compact(&mut &[0x04u8][..]), Ok(1));
        assert_eq!(compact(&mut &[0x15u8, 0x01][..]), Ok(69));
        assert!(compact(&mut &[0x03u8][..]).is_err());
        assert!(compact(&mut &[0xffu8; 3][..]).is_err());
        assert!(Metadata::from_bytes(&[0x6d, 0x65, 0x74, 0x61, 0x0e]).is_err());
        assert!(Metadata::from_bytes(&[]).is_err());
    }

    #[test]
    fn names_follow_polkadot_js() {
        assert_eq!(field_name("legacy_claimed_rewards"), "legacyClaimedRewards");
        assert_eq!(field_name("hash"), "hash_");
        assert_eq!(lower_first("TimedOut"), "timedOut");
    }
}
