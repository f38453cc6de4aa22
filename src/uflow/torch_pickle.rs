//! Reader of PyTorch's legacy (non-zip) `torch.save` format, in which the built-in backbone's
//! `.pth` state dict is stored. libtorch's C++ loaders read only the zip format, so we parse the
//! pickle stream ourselves: a small pickle machine for the opcodes `torch.save` emits (protocol
//! 2), storages as persistent ids, tensors rebuilt from `_rebuild_tensor_v2`, then the raw storage
//! bytes. Malformed input is an error, never a panic.
//!
//! Layout: pickle(magic) pickle(protocol) pickle(sys_info) pickle(state dict) pickle(storage keys)
//! then, per key in that order: u64 element count, raw little-endian elements.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

const MAGIC: u128 = 0x1950a86a20f9469cfc6c;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    F64,
    F16,
    I64,
    I32,
    U8,
    Bool,
}

impl DType {
    fn from_storage(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => DType::F32,
            "DoubleStorage" => DType::F64,
            "HalfStorage" => DType::F16,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ByteStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 => 4,
            DType::F64 | DType::I64 => 8,
            DType::F16 => 2,
            DType::U8 | DType::Bool => 1,
        }
    }

    pub fn kind(self) -> tch::Kind {
        match self {
            DType::F32 => tch::Kind::Float,
            DType::F64 => tch::Kind::Double,
            DType::F16 => tch::Kind::Half,
            DType::I64 => tch::Kind::Int64,
            DType::I32 => tch::Kind::Int,
            DType::U8 => tch::Kind::Uint8,
            DType::Bool => tch::Kind::Bool,
        }
    }
}

#[derive(Debug, Clone)]
enum Value {
    None,
    Bool,
    Int(i64),
    Float,
    Str(String),
    Tuple(Vec<Value>),
    List(Rc<RefCell<Vec<Value>>>),
    Dict(Rc<RefCell<Vec<(Value, Value)>>>),
    Global(String, String),
    Storage { key: String, dtype: DType },
    Tensor(TensorRef),
    Object,
    Mark,
}

/// A tensor as the pickle describes it: a view into one storage.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    pub storage: String,
    pub dtype: DType,
    pub offset: i64,
    pub size: Vec<i64>,
    pub stride: Vec<i64>,
}

type Result<T> = std::result::Result<T, String>;

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or("unexpected end of file")?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn line(&mut self) -> Result<String> {
        let rest = &self.data[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("unterminated line")?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }
}

fn as_ints(v: &Value) -> Result<Vec<i64>> {
    match v {
        Value::Tuple(items) => items
            .iter()
            .map(|i| {
                if let Value::Int(x) = i {
                    Ok(*x)
                } else {
                    Err("non-integer in shape".into())
                }
            })
            .collect(),
        _ => Err("expected a tuple of integers".into()),
    }
}

fn pop(stack: &mut Vec<Value>) -> Result<Value> {
    stack
        .pop()
        .ok_or_else(|| "pickle stack underflow".to_string())
}

fn pop_mark(stack: &mut Vec<Value>) -> Result<Vec<Value>> {
    let at = stack
        .iter()
        .rposition(|v| matches!(v, Value::Mark))
        .ok_or("MARK not found")?;
    let items = stack.split_off(at + 1);
    stack.pop();
    Ok(items)
}

/// Run one pickle up to its STOP and return the resulting value.
fn unpickle(r: &mut Reader<'_>) -> Result<Value> {
    let mut stack: Vec<Value> = Vec::new();
    let mut memo: HashMap<u32, Value> = HashMap::new();
    loop {
        let op = r.u8()?;
        match op {
            0x80 => {
                r.u8()?;
            }
            0x95 => {
                r.take(8)?;
            }
            b'.' => return pop(&mut stack),
            b'N' => stack.push(Value::None),
            0x88 | 0x89 => stack.push(Value::Bool),
            b'K' => stack.push(Value::Int(r.u8()? as i64)),
            b'M' => stack.push(Value::Int(
                u16::from_le_bytes(r.take(2)?.try_into().unwrap()) as i64,
            )),
            b'J' => stack.push(Value::Int(
                i32::from_le_bytes(r.take(4)?.try_into().unwrap()) as i64,
            )),
            0x8a | 0x8b => {
                let n = if op == 0x8a {
                    r.u8()? as usize
                } else {
                    r.u32()? as usize
                };
                let bytes = r.take(n)?;
                if n > 16 {
                    return Err("integer too large".into());
                }
                let mut v: i128 = 0;
                for (i, &b) in bytes.iter().enumerate() {
                    v |= (b as i128) << (8 * i);
                }
                if n > 0 && n < 16 && bytes[n - 1] & 0x80 != 0 {
                    v -= 1i128 << (8 * n);
                }
                stack.push(Value::Int(v as i64));
                if v as u128 == MAGIC {
                    stack.pop();
                    stack.push(Value::Str("magic".into()));
                }
            }
            b'G' => {
                r.take(8)?;
                stack.push(Value::Float);
            }
            b'X' | 0x8c | b'T' | b'U' | b'B' | b'C' => {
                let n = match op {
                    b'X' | b'T' | b'B' => r.u32()? as usize,
                    _ => r.u8()? as usize,
                };
                let s = String::from_utf8_lossy(r.take(n)?).into_owned();
                stack.push(Value::Str(s));
            }
            b'}' => stack.push(Value::Dict(Rc::new(RefCell::new(Vec::new())))),
            b']' => stack.push(Value::List(Rc::new(RefCell::new(Vec::new())))),
            b')' => stack.push(Value::Tuple(Vec::new())),
            b'(' => stack.push(Value::Mark),
            b't' => {
                let items = pop_mark(&mut stack)?;
                stack.push(Value::Tuple(items));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if stack.len() < n {
                    return Err("pickle stack underflow".into());
                }
                let items = stack.split_off(stack.len() - n);
                stack.push(Value::Tuple(items));
            }
            b'q' => {
                let k = r.u8()? as u32;
                memo.insert(k, stack.last().ok_or("memo of empty stack")?.clone());
            }
            b'r' => {
                let k = r.u32()?;
                memo.insert(k, stack.last().ok_or("memo of empty stack")?.clone());
            }
            0x94 => {
                let k = memo.len() as u32;
                memo.insert(k, stack.last().ok_or("memo of empty stack")?.clone());
            }
            b'h' | b'j' => {
                let k = if op == b'h' { r.u8()? as u32 } else { r.u32()? };
                stack.push(memo.get(&k).ok_or("unknown memo key")?.clone());
            }
            b'c' => {
                let module = r.line()?;
                let name = r.line()?;
                stack.push(Value::Global(module, name));
            }
            b'0' => {
                pop(&mut stack)?;
            }
            b'1' => {
                pop_mark(&mut stack)?;
            }
            b'2' => stack.push(stack.last().ok_or("DUP of empty stack")?.clone()),
            b'Q' => {
                let pid = pop(&mut stack)?;
                let Value::Tuple(items) = pid else {
                    return Err("persistent id is not a tuple".into());
                };
                match (items.first(), items.get(1), items.get(2)) {
                    (Some(Value::Str(tag)), Some(Value::Global(_, ty)), Some(Value::Str(key)))
                        if tag == "storage" =>
                    {
                        let dtype = DType::from_storage(ty)
                            .ok_or_else(|| format!("unsupported storage {ty}"))?;
                        stack.push(Value::Storage {
                            key: key.clone(),
                            dtype,
                        });
                    }
                    _ => return Err("unsupported persistent id".into()),
                }
            }
            b'R' | 0x81 => {
                let args = pop(&mut stack)?;
                let callable = pop(&mut stack)?;
                let Value::Global(module, name) = callable else {
                    stack.push(Value::Object);
                    continue;
                };
                let args = match args {
                    Value::Tuple(a) => a,
                    _ => Vec::new(),
                };
                let v = match (module.as_str(), name.as_str()) {
                    ("torch._utils", "_rebuild_tensor_v2" | "_rebuild_tensor") => {
                        let Some(Value::Storage { key, dtype }) = args.first() else {
                            return Err("tensor without storage".into());
                        };
                        let offset = match args.get(1) {
                            Some(Value::Int(o)) => *o,
                            _ => return Err("tensor without offset".into()),
                        };
                        let size = as_ints(args.get(2).ok_or("tensor without size")?)?;
                        let stride = as_ints(args.get(3).ok_or("tensor without stride")?)?;
                        if size.len() != stride.len() || size.iter().any(|&s| s < 0) || offset < 0 {
                            return Err("inconsistent tensor shape".into());
                        }
                        Value::Tensor(TensorRef {
                            storage: key.clone(),
                            dtype: *dtype,
                            offset,
                            size,
                            stride,
                        })
                    }
                    ("collections", "OrderedDict") => {
                        Value::Dict(Rc::new(RefCell::new(Vec::new())))
                    }
                    _ => Value::Object,
                };
                stack.push(v);
            }
            b's' => {
                let v = pop(&mut stack)?;
                let k = pop(&mut stack)?;
                match stack.last() {
                    Some(Value::Dict(d)) => d.borrow_mut().push((k, v)),
                    Some(_) => {}
                    None => return Err("SETITEM on empty stack".into()),
                }
            }
            b'u' => {
                let items = pop_mark(&mut stack)?;
                if items.len() % 2 != 0 {
                    return Err("odd SETITEMS".into());
                }
                if let Some(Value::Dict(d)) = stack.last() {
                    let mut d = d.borrow_mut();
                    let mut it = items.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        d.push((k, v));
                    }
                }
            }
            b'a' => {
                let v = pop(&mut stack)?;
                if let Some(Value::List(l)) = stack.last() {
                    l.borrow_mut().push(v);
                }
            }
            b'e' => {
                let items = pop_mark(&mut stack)?;
                if let Some(Value::List(l)) = stack.last() {
                    l.borrow_mut().extend(items);
                }
            }
            b'b' => {
                // Object state (e.g. the state dict's `_metadata`): not needed.
                pop(&mut stack)?;
            }
            other => {
                return Err(format!(
                    "unsupported pickle opcode 0x{other:02x} at byte {}",
                    r.pos - 1
                ));
            }
        }
    }
}

/// Parse a legacy `torch.save` file: named tensor views and the raw storages they index.
/// Raw storages by key: element type and little-endian bytes.
pub type Storages = HashMap<String, (DType, Vec<u8>)>;

pub fn parse(data: &[u8]) -> Result<(Vec<(String, TensorRef)>, Storages)> {
    let mut r = Reader { data, pos: 0 };
    match unpickle(&mut r)? {
        Value::Str(s) if s == "magic" => {}
        _ => {
            return Err(
                "not a PyTorch legacy file (magic number missing; zip files go through libtorch)"
                    .into(),
            );
        }
    }
    match unpickle(&mut r)? {
        Value::Int(1001) => {}
        v => return Err(format!("unsupported protocol version {v:?}")),
    }
    let _sys_info = unpickle(&mut r)?;
    let root = unpickle(&mut r)?;
    let Value::Dict(entries) = root else {
        return Err("the file does not hold a state dict".into());
    };
    let mut tensors = Vec::new();
    let mut dtypes: HashMap<String, DType> = HashMap::new();
    for (k, v) in entries.borrow().iter() {
        if let (Value::Str(name), Value::Tensor(t)) = (k, v) {
            dtypes.insert(t.storage.clone(), t.dtype);
            tensors.push((name.clone(), t.clone()));
        }
    }
    let keys = unpickle(&mut r)?;
    let Value::List(keys) = keys else {
        return Err("storage key list missing".into());
    };
    let mut storages = HashMap::new();
    for key in keys.borrow().iter() {
        let Value::Str(key) = key else {
            return Err("storage key is not a string".into());
        };
        let numel = u64::from_le_bytes(r.take(8)?.try_into().unwrap()) as usize;
        let dtype = *dtypes.get(key).unwrap_or(&DType::F32);
        let bytes = r.take(numel.checked_mul(dtype.size()).ok_or("storage too large")?)?;
        storages.insert(key.clone(), (dtype, bytes.to_vec()));
    }
    for (name, t) in &tensors {
        let (_, bytes) = storages
            .get(&t.storage)
            .ok_or_else(|| format!("{name}: storage {} missing", t.storage))?;
        let numel = (bytes.len() / t.dtype.size()) as i64;
        // The furthest element the view touches must lie inside its storage.
        let last = t.offset
            + t.size
                .iter()
                .zip(&t.stride)
                .map(|(s, st)| (s - 1).max(0) * st)
                .sum::<i64>();
        if t.size.iter().product::<i64>() > 0 && last >= numel {
            return Err(format!("{name}: view exceeds its storage"));
        }
    }
    Ok((tensors, storages))
}

/// Load a legacy `torch.save` state dict as named, contiguous CPU tensors.
pub fn load(data: &[u8]) -> Result<Vec<(String, tch::Tensor)>> {
    let (tensors, storages) = parse(data)?;
    let mut cache: HashMap<&str, tch::Tensor> = HashMap::new();
    let mut out = Vec::with_capacity(tensors.len());
    for (name, t) in &tensors {
        let base = match cache.get(t.storage.as_str()) {
            Some(b) => b.shallow_clone(),
            None => {
                let (dtype, bytes) = &storages[&t.storage];
                let numel = (bytes.len() / dtype.size()) as i64;
                let b = tch::Tensor::f_from_data_size(bytes, &[numel], dtype.kind())
                    .map_err(|e| e.to_string())?;
                cache.insert(t.storage.as_str(), b.shallow_clone());
                b
            }
        };
        let view = base
            .f_as_strided(&t.size, &t.stride, Some(t.offset))
            .map_err(|e| e.to_string())?;
        out.push((name.clone(), view.contiguous()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_truncated_inputs_are_errors() {
        assert!(parse(b"").is_err());
        assert!(parse(b"\x80\x02\x8a\x0a\x6c\xfc").is_err());
        assert!(parse(&[0xff; 64]).is_err());
        // Random bytes never panic.
        let mut s = 1u64;
        for _ in 0..2000 {
            let data: Vec<u8> = (0..64)
                .map(|_| {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (s >> 56) as u8
                })
                .collect();
            let _ = parse(&data);
        }
    }
}
