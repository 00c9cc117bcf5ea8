// node_modules/flatbuffers/mjs/constants.js
var SIZEOF_SHORT = 2;
var SIZEOF_INT = 4;
var FILE_IDENTIFIER_LENGTH = 4;
var SIZE_PREFIX_LENGTH = 4;

// node_modules/flatbuffers/mjs/utils.js
var int32 = new Int32Array(2);
var float32 = new Float32Array(int32.buffer);
var float64 = new Float64Array(int32.buffer);
var isLittleEndian = new Uint16Array(new Uint8Array([1, 0]).buffer)[0] === 1;

// node_modules/flatbuffers/mjs/encoding.js
var Encoding;
(function(Encoding2) {
  Encoding2[Encoding2["UTF8_BYTES"] = 1] = "UTF8_BYTES";
  Encoding2[Encoding2["UTF16_STRING"] = 2] = "UTF16_STRING";
})(Encoding || (Encoding = {}));

// node_modules/flatbuffers/mjs/byte-buffer.js
var ByteBuffer = class _ByteBuffer {
  /**
   * Create a new ByteBuffer with a given array of bytes (`Uint8Array`)
   */
  constructor(bytes_) {
    this.bytes_ = bytes_;
    this.position_ = 0;
    this.text_decoder_ = new TextDecoder();
  }
  /**
   * Create and allocate a new ByteBuffer with a given size.
   */
  static allocate(byte_size) {
    return new _ByteBuffer(new Uint8Array(byte_size));
  }
  clear() {
    this.position_ = 0;
  }
  /**
   * Get the underlying `Uint8Array`.
   */
  bytes() {
    return this.bytes_;
  }
  /**
   * Get the buffer's position.
   */
  position() {
    return this.position_;
  }
  /**
   * Set the buffer's position.
   */
  setPosition(position) {
    this.position_ = position;
  }
  /**
   * Get the buffer's capacity.
   */
  capacity() {
    return this.bytes_.length;
  }
  readInt8(offset) {
    return this.readUint8(offset) << 24 >> 24;
  }
  readUint8(offset) {
    return this.bytes_[offset];
  }
  readInt16(offset) {
    return this.readUint16(offset) << 16 >> 16;
  }
  readUint16(offset) {
    return this.bytes_[offset] | this.bytes_[offset + 1] << 8;
  }
  readInt32(offset) {
    return this.bytes_[offset] | this.bytes_[offset + 1] << 8 | this.bytes_[offset + 2] << 16 | this.bytes_[offset + 3] << 24;
  }
  readUint32(offset) {
    return this.readInt32(offset) >>> 0;
  }
  readInt64(offset) {
    return BigInt.asIntN(64, BigInt(this.readUint32(offset)) + (BigInt(this.readUint32(offset + 4)) << BigInt(32)));
  }
  readUint64(offset) {
    return BigInt.asUintN(64, BigInt(this.readUint32(offset)) + (BigInt(this.readUint32(offset + 4)) << BigInt(32)));
  }
  readFloat32(offset) {
    int32[0] = this.readInt32(offset);
    return float32[0];
  }
  readFloat64(offset) {
    int32[isLittleEndian ? 0 : 1] = this.readInt32(offset);
    int32[isLittleEndian ? 1 : 0] = this.readInt32(offset + 4);
    return float64[0];
  }
  writeInt8(offset, value) {
    this.bytes_[offset] = value;
  }
  writeUint8(offset, value) {
    this.bytes_[offset] = value;
  }
  writeInt16(offset, value) {
    this.bytes_[offset] = value;
    this.bytes_[offset + 1] = value >> 8;
  }
  writeUint16(offset, value) {
    this.bytes_[offset] = value;
    this.bytes_[offset + 1] = value >> 8;
  }
  writeInt32(offset, value) {
    this.bytes_[offset] = value;
    this.bytes_[offset + 1] = value >> 8;
    this.bytes_[offset + 2] = value >> 16;
    this.bytes_[offset + 3] = value >> 24;
  }
  writeUint32(offset, value) {
    this.bytes_[offset] = value;
    this.bytes_[offset + 1] = value >> 8;
    this.bytes_[offset + 2] = value >> 16;
    this.bytes_[offset + 3] = value >> 24;
  }
  writeInt64(offset, value) {
    this.writeInt32(offset, Number(BigInt.asIntN(32, value)));
    this.writeInt32(offset + 4, Number(BigInt.asIntN(32, value >> BigInt(32))));
  }
  writeUint64(offset, value) {
    this.writeUint32(offset, Number(BigInt.asUintN(32, value)));
    this.writeUint32(offset + 4, Number(BigInt.asUintN(32, value >> BigInt(32))));
  }
  writeFloat32(offset, value) {
    float32[0] = value;
    this.writeInt32(offset, int32[0]);
  }
  writeFloat64(offset, value) {
    float64[0] = value;
    this.writeInt32(offset, int32[isLittleEndian ? 0 : 1]);
    this.writeInt32(offset + 4, int32[isLittleEndian ? 1 : 0]);
  }
  /**
   * Return the file identifier.   Behavior is undefined for FlatBuffers whose
   * schema does not include a file_identifier (likely points at padding or the
   * start of a the root vtable).
   */
  getBufferIdentifier() {
    if (this.bytes_.length < this.position_ + SIZEOF_INT + FILE_IDENTIFIER_LENGTH) {
      throw new Error("FlatBuffers: ByteBuffer is too short to contain an identifier.");
    }
    let result = "";
    for (let i = 0; i < FILE_IDENTIFIER_LENGTH; i++) {
      result += String.fromCharCode(this.readInt8(this.position_ + SIZEOF_INT + i));
    }
    return result;
  }
  /**
   * Look up a field in the vtable, return an offset into the object, or 0 if the
   * field is not present.
   */
  __offset(bb_pos, vtable_offset) {
    const vtable = bb_pos - this.readInt32(bb_pos);
    return vtable_offset < this.readInt16(vtable) ? this.readInt16(vtable + vtable_offset) : 0;
  }
  /**
   * Initialize any Table-derived type to point to the union at the given offset.
   */
  __union(t, offset) {
    t.bb_pos = offset + this.readInt32(offset);
    t.bb = this;
    return t;
  }
  /**
   * Create a JavaScript string from UTF-8 data stored inside the FlatBuffer.
   * This allocates a new string and converts to wide chars upon each access.
   *
   * To avoid the conversion to string, pass Encoding.UTF8_BYTES as the
   * "optionalEncoding" argument. This is useful for avoiding conversion when
   * the data will just be packaged back up in another FlatBuffer later on.
   *
   * @param offset
   * @param opt_encoding Defaults to UTF16_STRING
   */
  __string(offset, opt_encoding) {
    offset += this.readInt32(offset);
    const length = this.readInt32(offset);
    offset += SIZEOF_INT;
    const utf8bytes = this.bytes_.subarray(offset, offset + length);
    if (opt_encoding === Encoding.UTF8_BYTES)
      return utf8bytes;
    else
      return this.text_decoder_.decode(utf8bytes);
  }
  /**
   * Handle unions that can contain string as its member, if a Table-derived type then initialize it,
   * if a string then return a new one
   *
   * WARNING: strings are immutable in JS so we can't change the string that the user gave us, this
   * makes the behaviour of __union_with_string different compared to __union
   */
  __union_with_string(o, offset) {
    if (typeof o === "string") {
      return this.__string(offset);
    }
    return this.__union(o, offset);
  }
  /**
   * Retrieve the relative offset stored at "offset"
   */
  __indirect(offset) {
    return offset + this.readInt32(offset);
  }
  /**
   * Get the start of data of a vector whose offset is stored at "offset" in this object.
   */
  __vector(offset) {
    return offset + this.readInt32(offset) + SIZEOF_INT;
  }
  /**
   * Get the length of a vector whose offset is stored at "offset" in this object.
   */
  __vector_len(offset) {
    return this.readInt32(offset + this.readInt32(offset));
  }
  __has_identifier(ident) {
    if (ident.length != FILE_IDENTIFIER_LENGTH) {
      throw new Error("FlatBuffers: file identifier must be length " + FILE_IDENTIFIER_LENGTH);
    }
    for (let i = 0; i < FILE_IDENTIFIER_LENGTH; i++) {
      if (ident.charCodeAt(i) != this.readInt8(this.position() + SIZEOF_INT + i)) {
        return false;
      }
    }
    return true;
  }
  /**
   * A helper function for generating list for obj api
   */
  createScalarList(listAccessor, listLength) {
    const ret = [];
    for (let i = 0; i < listLength; ++i) {
      const val = listAccessor(i);
      if (val !== null) {
        ret.push(val);
      }
    }
    return ret;
  }
  /**
   * A helper function for generating list for obj api
   * @param listAccessor function that accepts an index and return data at that index
   * @param listLength listLength
   * @param res result list
   */
  createObjList(listAccessor, listLength) {
    const ret = [];
    for (let i = 0; i < listLength; ++i) {
      const val = listAccessor(i);
      if (val !== null) {
        ret.push(val.unpack());
      }
    }
    return ret;
  }
};

// node_modules/flatbuffers/mjs/builder.js
var Builder = class _Builder {
  /**
   * Create a FlatBufferBuilder.
   */
  constructor(opt_initial_size) {
    this.minalign = 1;
    this.vtable = null;
    this.vtable_in_use = 0;
    this.isNested = false;
    this.object_start = 0;
    this.vtables = [];
    this.vector_num_elems = 0;
    this.force_defaults = false;
    this.string_maps = null;
    this.text_encoder = new TextEncoder();
    let initial_size;
    if (!opt_initial_size) {
      initial_size = 1024;
    } else {
      initial_size = opt_initial_size;
    }
    this.bb = ByteBuffer.allocate(initial_size);
    this.space = initial_size;
  }
  clear() {
    this.bb.clear();
    this.space = this.bb.capacity();
    this.minalign = 1;
    this.vtable = null;
    this.vtable_in_use = 0;
    this.isNested = false;
    this.object_start = 0;
    this.vtables = [];
    this.vector_num_elems = 0;
    this.force_defaults = false;
    this.string_maps = null;
  }
  /**
   * In order to save space, fields that are set to their default value
   * don't get serialized into the buffer. Forcing defaults provides a
   * way to manually disable this optimization.
   *
   * @param forceDefaults true always serializes default values
   */
  forceDefaults(forceDefaults) {
    this.force_defaults = forceDefaults;
  }
  /**
   * Get the ByteBuffer representing the FlatBuffer. Only call this after you've
   * called finish(). The actual data starts at the ByteBuffer's current position,
   * not necessarily at 0.
   */
  dataBuffer() {
    return this.bb;
  }
  /**
   * Get the bytes representing the FlatBuffer. Only call this after you've
   * called finish().
   */
  asUint8Array() {
    return this.bb.bytes().subarray(this.bb.position(), this.bb.position() + this.offset());
  }
  /**
   * Prepare to write an element of `size` after `additional_bytes` have been
   * written, e.g. if you write a string, you need to align such the int length
   * field is aligned to 4 bytes, and the string data follows it directly. If all
   * you need to do is alignment, `additional_bytes` will be 0.
   *
   * @param size This is the of the new element to write
   * @param additional_bytes The padding size
   */
  prep(size, additional_bytes) {
    if (size > this.minalign) {
      this.minalign = size;
    }
    const align_size = ~(this.bb.capacity() - this.space + additional_bytes) + 1 & size - 1;
    while (this.space < align_size + size + additional_bytes) {
      const old_buf_size = this.bb.capacity();
      this.bb = _Builder.growByteBuffer(this.bb);
      this.space += this.bb.capacity() - old_buf_size;
    }
    this.pad(align_size);
  }
  pad(byte_size) {
    for (let i = 0; i < byte_size; i++) {
      this.bb.writeInt8(--this.space, 0);
    }
  }
  writeInt8(value) {
    this.bb.writeInt8(this.space -= 1, value);
  }
  writeInt16(value) {
    this.bb.writeInt16(this.space -= 2, value);
  }
  writeInt32(value) {
    this.bb.writeInt32(this.space -= 4, value);
  }
  writeInt64(value) {
    this.bb.writeInt64(this.space -= 8, value);
  }
  writeFloat32(value) {
    this.bb.writeFloat32(this.space -= 4, value);
  }
  writeFloat64(value) {
    this.bb.writeFloat64(this.space -= 8, value);
  }
  /**
   * Add an `int8` to the buffer, properly aligned, and grows the buffer (if necessary).
   * @param value The `int8` to add the buffer.
   */
  addInt8(value) {
    this.prep(1, 0);
    this.writeInt8(value);
  }
  /**
   * Add an `int16` to the buffer, properly aligned, and grows the buffer (if necessary).
   * @param value The `int16` to add the buffer.
   */
  addInt16(value) {
    this.prep(2, 0);
    this.writeInt16(value);
  }
  /**
   * Add an `int32` to the buffer, properly aligned, and grows the buffer (if necessary).
   * @param value The `int32` to add the buffer.
   */
  addInt32(value) {
    this.prep(4, 0);
    this.writeInt32(value);
  }
  /**
   * Add an `int64` to the buffer, properly aligned, and grows the buffer (if necessary).
   * @param value The `int64` to add the buffer.
   */
  addInt64(value) {
    this.prep(8, 0);
    this.writeInt64(value);
  }
  /**
   * Add a `float32` to the buffer, properly aligned, and grows the buffer (if necessary).
   * @param value The `float32` to add the buffer.
   */
  addFloat32(value) {
    this.prep(4, 0);
    this.writeFloat32(value);
  }
  /**
   * Add a `float64` to the buffer, properly aligned, and grows the buffer (if necessary).
   * @param value The `float64` to add the buffer.
   */
  addFloat64(value) {
    this.prep(8, 0);
    this.writeFloat64(value);
  }
  addFieldInt8(voffset, value, defaultValue) {
    if (this.force_defaults || value != defaultValue) {
      this.addInt8(value);
      this.slot(voffset);
    }
  }
  addFieldInt16(voffset, value, defaultValue) {
    if (this.force_defaults || value != defaultValue) {
      this.addInt16(value);
      this.slot(voffset);
    }
  }
  addFieldInt32(voffset, value, defaultValue) {
    if (this.force_defaults || value != defaultValue) {
      this.addInt32(value);
      this.slot(voffset);
    }
  }
  addFieldInt64(voffset, value, defaultValue) {
    if (this.force_defaults || value !== defaultValue) {
      this.addInt64(value);
      this.slot(voffset);
    }
  }
  addFieldFloat32(voffset, value, defaultValue) {
    if (this.force_defaults || value != defaultValue) {
      this.addFloat32(value);
      this.slot(voffset);
    }
  }
  addFieldFloat64(voffset, value, defaultValue) {
    if (this.force_defaults || value != defaultValue) {
      this.addFloat64(value);
      this.slot(voffset);
    }
  }
  addFieldOffset(voffset, value, defaultValue) {
    if (this.force_defaults || value != defaultValue) {
      this.addOffset(value);
      this.slot(voffset);
    }
  }
  /**
   * Structs are stored inline, so nothing additional is being added. `d` is always 0.
   */
  addFieldStruct(voffset, value, defaultValue) {
    if (value != defaultValue) {
      this.nested(value);
      this.slot(voffset);
    }
  }
  /**
   * Structures are always stored inline, they need to be created right
   * where they're used.  You'll get this assertion failure if you
   * created it elsewhere.
   */
  nested(obj) {
    if (obj != this.offset()) {
      throw new TypeError("FlatBuffers: struct must be serialized inline.");
    }
  }
  /**
   * Should not be creating any other object, string or vector
   * while an object is being constructed
   */
  notNested() {
    if (this.isNested) {
      throw new TypeError("FlatBuffers: object serialization must not be nested.");
    }
  }
  /**
   * Set the current vtable at `voffset` to the current location in the buffer.
   */
  slot(voffset) {
    if (this.vtable !== null)
      this.vtable[voffset] = this.offset();
  }
  /**
   * @returns Offset relative to the end of the buffer.
   */
  offset() {
    return this.bb.capacity() - this.space;
  }
  /**
   * Doubles the size of the backing ByteBuffer and copies the old data towards
   * the end of the new buffer (since we build the buffer backwards).
   *
   * @param bb The current buffer with the existing data
   * @returns A new byte buffer with the old data copied
   * to it. The data is located at the end of the buffer.
   *
   * uint8Array.set() formally takes {Array<number>|ArrayBufferView}, so to pass
   * it a uint8Array we need to suppress the type check:
   * @suppress {checkTypes}
   */
  static growByteBuffer(bb) {
    const old_buf_size = bb.capacity();
    if (old_buf_size & 3221225472) {
      throw new Error("FlatBuffers: cannot grow buffer beyond 2 gigabytes.");
    }
    const new_buf_size = old_buf_size << 1;
    const nbb = ByteBuffer.allocate(new_buf_size);
    nbb.setPosition(new_buf_size - old_buf_size);
    nbb.bytes().set(bb.bytes(), new_buf_size - old_buf_size);
    return nbb;
  }
  /**
   * Adds on offset, relative to where it will be written.
   *
   * @param offset The offset to add.
   */
  addOffset(offset) {
    this.prep(SIZEOF_INT, 0);
    this.writeInt32(this.offset() - offset + SIZEOF_INT);
  }
  /**
   * Start encoding a new object in the buffer.  Users will not usually need to
   * call this directly. The FlatBuffers compiler will generate helper methods
   * that call this method internally.
   */
  startObject(numfields) {
    this.notNested();
    if (this.vtable == null) {
      this.vtable = [];
    }
    this.vtable_in_use = numfields;
    for (let i = 0; i < numfields; i++) {
      this.vtable[i] = 0;
    }
    this.isNested = true;
    this.object_start = this.offset();
  }
  /**
   * Finish off writing the object that is under construction.
   *
   * @returns The offset to the object inside `dataBuffer`
   */
  endObject() {
    if (this.vtable == null || !this.isNested) {
      throw new Error("FlatBuffers: endObject called without startObject");
    }
    this.addInt32(0);
    const vtableloc = this.offset();
    let i = this.vtable_in_use - 1;
    for (; i >= 0 && this.vtable[i] == 0; i--) {
    }
    const trimmed_size = i + 1;
    for (; i >= 0; i--) {
      this.addInt16(this.vtable[i] != 0 ? vtableloc - this.vtable[i] : 0);
    }
    const standard_fields = 2;
    this.addInt16(vtableloc - this.object_start);
    const len = (trimmed_size + standard_fields) * SIZEOF_SHORT;
    this.addInt16(len);
    let existing_vtable = 0;
    const vt1 = this.space;
    outer_loop: for (i = 0; i < this.vtables.length; i++) {
      const vt2 = this.bb.capacity() - this.vtables[i];
      if (len == this.bb.readInt16(vt2)) {
        for (let j = SIZEOF_SHORT; j < len; j += SIZEOF_SHORT) {
          if (this.bb.readInt16(vt1 + j) != this.bb.readInt16(vt2 + j)) {
            continue outer_loop;
          }
        }
        existing_vtable = this.vtables[i];
        break;
      }
    }
    if (existing_vtable) {
      this.space = this.bb.capacity() - vtableloc;
      this.bb.writeInt32(this.space, existing_vtable - vtableloc);
    } else {
      this.vtables.push(this.offset());
      this.bb.writeInt32(this.bb.capacity() - vtableloc, this.offset() - vtableloc);
    }
    this.isNested = false;
    return vtableloc;
  }
  /**
   * Finalize a buffer, poiting to the given `root_table`.
   */
  finish(root_table, opt_file_identifier, opt_size_prefix) {
    const size_prefix = opt_size_prefix ? SIZE_PREFIX_LENGTH : 0;
    if (opt_file_identifier) {
      const file_identifier = opt_file_identifier;
      this.prep(this.minalign, SIZEOF_INT + FILE_IDENTIFIER_LENGTH + size_prefix);
      if (file_identifier.length != FILE_IDENTIFIER_LENGTH) {
        throw new TypeError("FlatBuffers: file identifier must be length " + FILE_IDENTIFIER_LENGTH);
      }
      for (let i = FILE_IDENTIFIER_LENGTH - 1; i >= 0; i--) {
        this.writeInt8(file_identifier.charCodeAt(i));
      }
    }
    this.prep(this.minalign, SIZEOF_INT + size_prefix);
    this.addOffset(root_table);
    if (size_prefix) {
      this.addInt32(this.bb.capacity() - this.space);
    }
    this.bb.setPosition(this.space);
  }
  /**
   * Finalize a size prefixed buffer, pointing to the given `root_table`.
   */
  finishSizePrefixed(root_table, opt_file_identifier) {
    this.finish(root_table, opt_file_identifier, true);
  }
  /**
   * This checks a required field has been set in a given table that has
   * just been constructed.
   */
  requiredField(table, field) {
    const table_start = this.bb.capacity() - table;
    const vtable_start = table_start - this.bb.readInt32(table_start);
    const ok = field < this.bb.readInt16(vtable_start) && this.bb.readInt16(vtable_start + field) != 0;
    if (!ok) {
      throw new TypeError("FlatBuffers: field " + field + " must be set");
    }
  }
  /**
   * Start a new array/vector of objects.  Users usually will not call
   * this directly. The FlatBuffers compiler will create a start/end
   * method for vector types in generated code.
   *
   * @param elem_size The size of each element in the array
   * @param num_elems The number of elements in the array
   * @param alignment The alignment of the array
   */
  startVector(elem_size, num_elems, alignment) {
    this.notNested();
    this.vector_num_elems = num_elems;
    this.prep(SIZEOF_INT, elem_size * num_elems);
    this.prep(alignment, elem_size * num_elems);
  }
  /**
   * Finish off the creation of an array and all its elements. The array must be
   * created with `startVector`.
   *
   * @returns The offset at which the newly created array
   * starts.
   */
  endVector() {
    this.writeInt32(this.vector_num_elems);
    return this.offset();
  }
  /**
   * Encode the string `s` in the buffer using UTF-8. If the string passed has
   * already been seen, we return the offset of the already written string
   *
   * @param s The string to encode
   * @return The offset in the buffer where the encoded string starts
   */
  createSharedString(s) {
    if (!s) {
      return 0;
    }
    if (!this.string_maps) {
      this.string_maps = /* @__PURE__ */ new Map();
    }
    if (this.string_maps.has(s)) {
      return this.string_maps.get(s);
    }
    const offset = this.createString(s);
    this.string_maps.set(s, offset);
    return offset;
  }
  /**
   * Encode the string `s` in the buffer using UTF-8. If a Uint8Array is passed
   * instead of a string, it is assumed to contain valid UTF-8 encoded data.
   *
   * @param s The string to encode
   * @return The offset in the buffer where the encoded string starts
   */
  createString(s) {
    if (s === null || s === void 0) {
      return 0;
    }
    let utf8;
    if (s instanceof Uint8Array) {
      utf8 = s;
    } else {
      utf8 = this.text_encoder.encode(s);
    }
    this.addInt8(0);
    this.startVector(1, utf8.length, 1);
    this.bb.setPosition(this.space -= utf8.length);
    this.bb.bytes().set(utf8, this.space);
    return this.endVector();
  }
  /**
   * Create a byte vector.
   *
   * @param v The bytes to add
   * @returns The offset in the buffer where the byte vector starts
   */
  createByteVector(v) {
    if (v === null || v === void 0) {
      return 0;
    }
    this.startVector(1, v.length, 1);
    this.bb.setPosition(this.space -= v.length);
    this.bb.bytes().set(v, this.space);
    return this.endVector();
  }
  /**
   * A helper function to pack an object
   *
   * @returns offset of obj
   */
  createObjectOffset(obj) {
    if (obj === null) {
      return 0;
    }
    if (typeof obj === "string") {
      return this.createString(obj);
    } else {
      return obj.pack(this);
    }
  }
  /**
   * A helper function to pack a list of object
   *
   * @returns list of offsets of each non null object
   */
  createObjectOffsetList(list) {
    const ret = [];
    for (let i = 0; i < list.length; ++i) {
      const val = list[i];
      if (val !== null) {
        ret.push(this.createObjectOffset(val));
      } else {
        throw new TypeError("FlatBuffers: Argument for createObjectOffsetList cannot contain null.");
      }
    }
    return ret;
  }
  createStructOffsetList(list, startFunc) {
    startFunc(this, list.length);
    this.createObjectOffsetList(list.slice().reverse());
    return this.endVector();
  }
};

// src/generated/hotline/wire/fb/ack.ts
var Ack = class _Ack {
  constructor() {
    this.bb = null;
    this.bb_pos = 0;
  }
  __init(i, bb) {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }
  static getRootAsAck(bb, obj) {
    return (obj || new _Ack()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  static getSizePrefixedRootAsAck(bb, obj) {
    bb.setPosition(bb.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _Ack()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  upToSeq() {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  static startAck(builder) {
    builder.startObject(1);
  }
  static addUpToSeq(builder, upToSeq) {
    builder.addFieldInt64(0, upToSeq, BigInt("0"));
  }
  static endAck(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createAck(builder, upToSeq) {
    _Ack.startAck(builder);
    _Ack.addUpToSeq(builder, upToSeq);
    return _Ack.endAck(builder);
  }
};

// src/generated/hotline/wire/fb/ack-ok.ts
var AckOk = class _AckOk {
  constructor() {
    this.bb = null;
    this.bb_pos = 0;
  }
  __init(i, bb) {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }
  static getRootAsAckOk(bb, obj) {
    return (obj || new _AckOk()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  static getSizePrefixedRootAsAckOk(bb, obj) {
    bb.setPosition(bb.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _AckOk()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  /**
   * The device cursor now stored (never lower than before: cursors only move forward).
   */
  deviceCursor() {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  static startAckOk(builder) {
    builder.startObject(1);
  }
  static addDeviceCursor(builder, deviceCursor) {
    builder.addFieldInt64(0, deviceCursor, BigInt("0"));
  }
  static endAckOk(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createAckOk(builder, deviceCursor) {
    _AckOk.startAckOk(builder);
    _AckOk.addDeviceCursor(builder, deviceCursor);
    return _AckOk.endAckOk(builder);
  }
};

// src/generated/hotline/wire/fb/conversation-ref.ts
var ConversationRef = class {
  constructor() {
    this.bb = null;
    this.bb_pos = 0;
  }
  __init(i, bb) {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }
  kind() {
    return this.bb.readUint8(this.bb_pos);
  }
  id() {
    return this.bb.readUint64(this.bb_pos + 8);
  }
  static sizeOf() {
    return 16;
  }
  static createConversationRef(builder, kind, id) {
    builder.prep(8, 16);
    builder.writeInt64(BigInt(id ?? 0));
    builder.pad(7);
    builder.writeInt8(kind);
    return builder.offset();
  }
};

// src/generated/hotline/wire/fb/read-position.ts
var ReadPosition = class _ReadPosition {
  constructor() {
    this.bb = null;
    this.bb_pos = 0;
  }
  __init(i, bb) {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }
  static getRootAsReadPosition(bb, obj) {
    return (obj || new _ReadPosition()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  static getSizePrefixedRootAsReadPosition(bb, obj) {
    bb.setPosition(bb.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _ReadPosition()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  conversation(obj) {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? (obj || new ConversationRef()).__init(this.bb_pos + offset, this.bb) : null;
  }
  /**
   * The inbox seq read up to (never moves backwards).
   */
  readSeq() {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  /**
   * Messages from others in this conversation after read_seq.
   */
  unread() {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  /**
   * The newest inbox seq of this conversation.
   */
  lastSeq() {
    const offset = this.bb.__offset(this.bb_pos, 10);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  static startReadPosition(builder) {
    builder.startObject(4);
  }
  static addConversation(builder, conversationOffset) {
    builder.addFieldStruct(0, conversationOffset, 0);
  }
  static addReadSeq(builder, readSeq2) {
    builder.addFieldInt64(1, readSeq2, BigInt("0"));
  }
  static addUnread(builder, unread2) {
    builder.addFieldInt64(2, unread2, BigInt("0"));
  }
  static addLastSeq(builder, lastSeq2) {
    builder.addFieldInt64(3, lastSeq2, BigInt("0"));
  }
  static endReadPosition(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createReadPosition(builder, conversationOffset, readSeq2, unread2, lastSeq2) {
    _ReadPosition.startReadPosition(builder);
    _ReadPosition.addConversation(builder, conversationOffset);
    _ReadPosition.addReadSeq(builder, readSeq2);
    _ReadPosition.addUnread(builder, unread2);
    _ReadPosition.addLastSeq(builder, lastSeq2);
    return _ReadPosition.endReadPosition(builder);
  }
};

// src/generated/hotline/wire/fb/conversation-list.ts
var ConversationList = class _ConversationList {
  constructor() {
    this.bb = null;
    this.bb_pos = 0;
  }
  __init(i, bb) {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }
  static getRootAsConversationList(bb, obj) {
    return (obj || new _ConversationList()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  static getSizePrefixedRootAsConversationList(bb, obj) {
    bb.setPosition(bb.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _ConversationList()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  conversations(index, obj) {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? (obj || new ReadPosition()).__init(this.bb.__indirect(this.bb.__vector(this.bb_pos + offset) + index * 4), this.bb) : null;
  }
  conversationsLength() {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.__vector_len(this.bb_pos + offset) : 0;
  }
  more() {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? !!this.bb.readInt8(this.bb_pos + offset) : false;
  }
  static startConversationList(builder) {
    builder.startObject(2);
  }
  static addConversations(builder, conversationsOffset) {
    builder.addFieldOffset(0, conversationsOffset, 0);
  }
  static createConversationsVector(builder, data) {
    builder.startVector(4, data.length, 4);
    for (let i = data.length - 1; i >= 0; i--) {
      builder.addOffset(data[i]);
    }
    return builder.endVector();
  }
  static startConversationsVector(builder, numElems) {
    builder.startVector(4, numElems, 4);
  }
  static addMore(builder, more) {
    builder.addFieldInt8(1, +more, 0);
  }
  static endConversationList(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createConversationList(builder, conversationsOffset, more) {
    _ConversationList.startConversationList(builder);
    _ConversationList.addConversations(builder, conversationsOffset);
    _ConversationList.addMore(builder, more);
    return _ConversationList.endConversationList(builder);
  }
};

// src/generated/hotline/wire/fb/conversations.ts
var Conversations = class _Conversations {
  constructor() {
    this.bb = null;
    this.bb_pos = 0;
  }
  __init(i, bb) {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }
  static getRootAsConversations(bb, obj) {
    return (obj || new _Conversations()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  static getSizePrefixedRootAsConversations(bb, obj) {
    bb.setPosition(bb.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _Conversations()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  after(obj) {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? (obj || new ConversationRef()).__init(this.bb_pos + offset, this.bb) : null;
  }
  static startConversations(builder) {
    builder.startObject(1);
  }
  static addAfter(builder, afterOffset) {
    builder.addFieldStruct(0, afterOffset, 0);
  }
  static endConversations(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createConversations(builder, afterOffset) {
    _Conversations.startConversations(builder);
    _Conversations.addAfter(builder, afterOffset);
    return _Conversations.endConversations(builder);
  }
};

// src/generated/hotline/wire/fb/deliver.ts
var Deliver = class _Deliver {
  constructor() {
    this.bb = null;
    this.bb_pos = 0;
  }
  __init(i, bb) {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }
  static getRootAsDeliver(bb, obj) {
    return (obj || new _Deliver()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  static getSizePrefixedRootAsDeliver(bb, obj) {
    bb.setPosition(bb.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _Deliver()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  messageId() {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  conversation(obj) {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? (obj || new ConversationRef()).__init(this.bb_pos + offset, this.bb) : null;
  }
  sender() {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  senderDevice() {
    const offset = this.bb.__offset(this.bb_pos, 10);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  /**
   * Position in the receiving user's inbox: dense, starting at 1.
   */
  inboxSeq() {
    const offset = this.bb.__offset(this.bb_pos, 12);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  timestampUs() {
    const offset = this.bb.__offset(this.bb_pos, 14);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  payload(index) {
    const offset = this.bb.__offset(this.bb_pos, 16);
    return offset ? this.bb.readUint8(this.bb.__vector(this.bb_pos + offset) + index) : 0;
  }
  payloadLength() {
    const offset = this.bb.__offset(this.bb_pos, 16);
    return offset ? this.bb.__vector_len(this.bb_pos + offset) : 0;
  }
  payloadArray() {
    const offset = this.bb.__offset(this.bb_pos, 16);
    return offset ? new Uint8Array(this.bb.bytes().buffer, this.bb.bytes().byteOffset + this.bb.__vector(this.bb_pos + offset), this.bb.__vector_len(this.bb_pos + offset)) : null;
  }
  flags() {
    const offset = this.bb.__offset(this.bb_pos, 18);
    return offset ? this.bb.readUint8(this.bb_pos + offset) : 1 /* DeliveryReceipt */;
  }
  clientMsgId() {
    const offset = this.bb.__offset(this.bb_pos, 20);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  kind() {
    const offset = this.bb.__offset(this.bb_pos, 22);
    return offset ? this.bb.readUint8(this.bb_pos + offset) : 0 /* Normal */;
  }
  refersTo() {
    const offset = this.bb.__offset(this.bb_pos, 24);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  /**
   * The receiving user's durable watermark: every entry of its inbox up to this seq is
   * durable (fsynced under `sync` durability). An entry above it was delivered before its
   * fsync (early delivery) and is tentative until a later `Deliver`, `Durable` or
   * `SendAck` covers it: advance the stored cursor (and `Ack`) only up to the watermark.
   * 0 from servers that predate it.
   */
  durableSeq() {
    const offset = this.bb.__offset(this.bb_pos, 26);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  static startDeliver(builder) {
    builder.startObject(12);
  }
  static addMessageId(builder, messageId) {
    builder.addFieldInt64(0, messageId, BigInt("0"));
  }
  static addConversation(builder, conversationOffset) {
    builder.addFieldStruct(1, conversationOffset, 0);
  }
  static addSender(builder, sender) {
    builder.addFieldInt64(2, sender, BigInt("0"));
  }
  static addSenderDevice(builder, senderDevice) {
    builder.addFieldInt64(3, senderDevice, BigInt("0"));
  }
  static addInboxSeq(builder, inboxSeq) {
    builder.addFieldInt64(4, inboxSeq, BigInt("0"));
  }
  static addTimestampUs(builder, timestampUs) {
    builder.addFieldInt64(5, timestampUs, BigInt("0"));
  }
  static addPayload(builder, payloadOffset) {
    builder.addFieldOffset(6, payloadOffset, 0);
  }
  static createPayloadVector(builder, data) {
    builder.startVector(1, data.length, 1);
    for (let i = data.length - 1; i >= 0; i--) {
      builder.addInt8(data[i]);
    }
    return builder.endVector();
  }
  static startPayloadVector(builder, numElems) {
    builder.startVector(1, numElems, 1);
  }
  static addFlags(builder, flags) {
    builder.addFieldInt8(7, flags, 1 /* DeliveryReceipt */);
  }
  static addClientMsgId(builder, clientMsgId) {
    builder.addFieldInt64(8, clientMsgId, BigInt("0"));
  }
  static addKind(builder, kind) {
    builder.addFieldInt8(9, kind, 0 /* Normal */);
  }
  static addRefersTo(builder, refersTo) {
    builder.addFieldInt64(10, refersTo, BigInt("0"));
  }
  static addDurableSeq(builder, durableSeq) {
    builder.addFieldInt64(11, durableSeq, BigInt("0"));
  }
  static endDeliver(builder) {
    const offset = builder.endObject();
    return offset;
  }
};

// src/generated/hotline/wire/fb/durable.ts
var Durable = class _Durable {
  constructor() {
    this.bb = null;
    this.bb_pos = 0;
  }
  __init(i, bb) {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }
  static getRootAsDurable(bb, obj) {
    return (obj || new _Durable()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  static getSizePrefixedRootAsDurable(bb, obj) {
    bb.setPosition(bb.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _Durable()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  inboxSeq() {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  static startDurable(builder) {
    builder.startObject(1);
  }
  static addInboxSeq(builder, inboxSeq) {
    builder.addFieldInt64(0, inboxSeq, BigInt("0"));
  }
  static endDurable(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createDurable(builder, inboxSeq) {
    _Durable.startDurable(builder);
    _Durable.addInboxSeq(builder, inboxSeq);
    return _Durable.endDurable(builder);
  }
};

// src/generated/hotline/wire/fb/error-code.ts
var ErrorCode = /* @__PURE__ */ ((ErrorCode2) => {
  ErrorCode2[ErrorCode2["Unknown"] = 0] = "Unknown";
  ErrorCode2[ErrorCode2["MalformedFrame"] = 1] = "MalformedFrame";
  ErrorCode2[ErrorCode2["FrameTooLarge"] = 2] = "FrameTooLarge";
  ErrorCode2[ErrorCode2["UnknownBody"] = 3] = "UnknownBody";
  ErrorCode2[ErrorCode2["UnsupportedVersion"] = 4] = "UnsupportedVersion";
  ErrorCode2[ErrorCode2["InvalidState"] = 5] = "InvalidState";
  ErrorCode2[ErrorCode2["InvalidRequest"] = 6] = "InvalidRequest";
  ErrorCode2[ErrorCode2["InvalidCredentials"] = 7] = "InvalidCredentials";
  ErrorCode2[ErrorCode2["UserExists"] = 8] = "UserExists";
  ErrorCode2[ErrorCode2["RegistrationClosed"] = 9] = "RegistrationClosed";
  ErrorCode2[ErrorCode2["NoSuchUser"] = 10] = "NoSuchUser";
  ErrorCode2[ErrorCode2["PayloadTooLarge"] = 11] = "PayloadTooLarge";
  ErrorCode2[ErrorCode2["RateLimited"] = 12] = "RateLimited";
  ErrorCode2[ErrorCode2["Overloaded"] = 13] = "Overloaded";
  ErrorCode2[ErrorCode2["StorageUnavailable"] = 14] = "StorageUnavailable";
  ErrorCode2[ErrorCode2["Forbidden"] = 15] = "Forbidden";
  ErrorCode2[ErrorCode2["ShuttingDown"] = 16] = "ShuttingDown";
  ErrorCode2[ErrorCode2["IdleTimeout"] = 17] = "IdleTimeout";
  ErrorCode2[ErrorCode2["Internal"] = 18] = "Internal";
  ErrorCode2[ErrorCode2["NoSuchGroup"] = 19] = "NoSuchGroup";
  ErrorCode2[ErrorCode2["NoSuchMessage"] = 20] = "NoSuchMessage";
  ErrorCode2[ErrorCode2["GroupFull"] = 21] = "GroupFull";
  return ErrorCode2;
})(ErrorCode || {});

// src/generated/hotline/wire/fb/error.ts
var Error2 = class _Error {
  constructor() {
    this.bb = null;
    this.bb_pos = 0;
  }
  __init(i, bb) {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }
  static getRootAsError(bb, obj) {
    return (obj || new _Error()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  static getSizePrefixedRootAsError(bb, obj) {
    bb.setPosition(bb.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _Error()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  code() {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.readUint16(this.bb_pos + offset) : 0 /* Unknown */;
  }
  message(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  /**
   * For RateLimited and Overloaded: when to try again; 0 when unknown.
   */
  retryAfterMs() {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? this.bb.readUint32(this.bb_pos + offset) : 0;
  }
  static startError(builder) {
    builder.startObject(3);
  }
  static addCode(builder, code) {
    builder.addFieldInt16(0, code, 0 /* Unknown */);
  }
  static addMessage(builder, messageOffset) {
    builder.addFieldOffset(1, messageOffset, 0);
  }
  static addRetryAfterMs(builder, retryAfterMs) {
    builder.addFieldInt32(2, retryAfterMs, 0);
  }
  static endError(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createError(builder, code, messageOffset, retryAfterMs) {
    _Error.startError(builder);
    _Error.addCode(builder, code);
    _Error.addMessage(builder, messageOffset);
    _Error.addRetryAfterMs(builder, retryAfterMs);
    return _Error.endError(builder);
  }
};

// src/generated/hotline/wire/fb/hello.ts
var Hello = class _Hello {
  constructor() {
    this.bb = null;
    this.bb_pos = 0;
  }
  __init(i, bb) {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }
  static getRootAsHello(bb, obj) {
    return (obj || new _Hello()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  static getSizePrefixedRootAsHello(bb, obj) {
    bb.setPosition(bb.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _Hello()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  versionMin() {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.readUint16(this.bb_pos + offset) : 0;
  }
  versionMax() {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.readUint16(this.bb_pos + offset) : 0;
  }
  clientName(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  static startHello(builder) {
    builder.startObject(3);
  }
  static addVersionMin(builder, versionMin) {
    builder.addFieldInt16(0, versionMin, 0);
  }
  static addVersionMax(builder, versionMax) {
    builder.addFieldInt16(1, versionMax, 0);
  }
  static addClientName(builder, clientNameOffset) {
    builder.addFieldOffset(2, clientNameOffset, 0);
  }
  static endHello(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createHello(builder, versionMin, versionMax, clientNameOffset) {
    _Hello.startHello(builder);
    _Hello.addVersionMin(builder, versionMin);
    _Hello.addVersionMax(builder, versionMax);
    _Hello.addClientName(builder, clientNameOffset);
    return _Hello.endHello(builder);
  }
};

// src/generated/hotline/wire/fb/limits.ts
var Limits = class _Limits {
  constructor() {
    this.bb = null;
    this.bb_pos = 0;
  }
  __init(i, bb) {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }
  static getRootAsLimits(bb, obj) {
    return (obj || new _Limits()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  static getSizePrefixedRootAsLimits(bb, obj) {
    bb.setPosition(bb.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _Limits()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  frameBytesMax() {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.readUint32(this.bb_pos + offset) : 0;
  }
  payloadBytesMax() {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.readUint32(this.bb_pos + offset) : 0;
  }
  syncPageMessagesMax() {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? this.bb.readUint32(this.bb_pos + offset) : 0;
  }
  idleTimeoutMs() {
    const offset = this.bb.__offset(this.bb_pos, 10);
    return offset ? this.bb.readUint32(this.bb_pos + offset) : 0;
  }
  usernameBytesMax() {
    const offset = this.bb.__offset(this.bb_pos, 12);
    return offset ? this.bb.readUint32(this.bb_pos + offset) : 0;
  }
  passwordBytesMax() {
    const offset = this.bb.__offset(this.bb_pos, 14);
    return offset ? this.bb.readUint32(this.bb_pos + offset) : 0;
  }
  deviceNameBytesMax() {
    const offset = this.bb.__offset(this.bb_pos, 16);
    return offset ? this.bb.readUint32(this.bb_pos + offset) : 0;
  }
  static startLimits(builder) {
    builder.startObject(7);
  }
  static addFrameBytesMax(builder, frameBytesMax) {
    builder.addFieldInt32(0, frameBytesMax, 0);
  }
  static addPayloadBytesMax(builder, payloadBytesMax) {
    builder.addFieldInt32(1, payloadBytesMax, 0);
  }
  static addSyncPageMessagesMax(builder, syncPageMessagesMax) {
    builder.addFieldInt32(2, syncPageMessagesMax, 0);
  }
  static addIdleTimeoutMs(builder, idleTimeoutMs) {
    builder.addFieldInt32(3, idleTimeoutMs, 0);
  }
  static addUsernameBytesMax(builder, usernameBytesMax) {
    builder.addFieldInt32(4, usernameBytesMax, 0);
  }
  static addPasswordBytesMax(builder, passwordBytesMax) {
    builder.addFieldInt32(5, passwordBytesMax, 0);
  }
  static addDeviceNameBytesMax(builder, deviceNameBytesMax) {
    builder.addFieldInt32(6, deviceNameBytesMax, 0);
  }
  static endLimits(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createLimits(builder, frameBytesMax, payloadBytesMax, syncPageMessagesMax, idleTimeoutMs, usernameBytesMax, passwordBytesMax, deviceNameBytesMax) {
    _Limits.startLimits(builder);
    _Limits.addFrameBytesMax(builder, frameBytesMax);
    _Limits.addPayloadBytesMax(builder, payloadBytesMax);
    _Limits.addSyncPageMessagesMax(builder, syncPageMessagesMax);
    _Limits.addIdleTimeoutMs(builder, idleTimeoutMs);
    _Limits.addUsernameBytesMax(builder, usernameBytesMax);
    _Limits.addPasswordBytesMax(builder, passwordBytesMax);
    _Limits.addDeviceNameBytesMax(builder, deviceNameBytesMax);
    return _Limits.endLimits(builder);
  }
};

// src/generated/hotline/wire/fb/hello-ok.ts
var HelloOk = class _HelloOk {
  constructor() {
    this.bb = null;
    this.bb_pos = 0;
  }
  __init(i, bb) {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }
  static getRootAsHelloOk(bb, obj) {
    return (obj || new _HelloOk()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  static getSizePrefixedRootAsHelloOk(bb, obj) {
    bb.setPosition(bb.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _HelloOk()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  version() {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.readUint16(this.bb_pos + offset) : 0;
  }
  serverName(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  limits(obj) {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? (obj || new Limits()).__init(this.bb.__indirect(this.bb_pos + offset), this.bb) : null;
  }
  static startHelloOk(builder) {
    builder.startObject(3);
  }
  static addVersion(builder, version) {
    builder.addFieldInt16(0, version, 0);
  }
  static addServerName(builder, serverNameOffset) {
    builder.addFieldOffset(1, serverNameOffset, 0);
  }
  static addLimits(builder, limitsOffset) {
    builder.addFieldOffset(2, limitsOffset, 0);
  }
  static endHelloOk(builder) {
    const offset = builder.endObject();
    return offset;
  }
};

// src/generated/hotline/wire/fb/login.ts
var Login = class _Login {
  constructor() {
    this.bb = null;
    this.bb_pos = 0;
  }
  __init(i, bb) {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }
  static getRootAsLogin(bb, obj) {
    return (obj || new _Login()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  static getSizePrefixedRootAsLogin(bb, obj) {
    bb.setPosition(bb.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _Login()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  username(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  password(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  token(index) {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? this.bb.readUint8(this.bb.__vector(this.bb_pos + offset) + index) : 0;
  }
  tokenLength() {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? this.bb.__vector_len(this.bb_pos + offset) : 0;
  }
  tokenArray() {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? new Uint8Array(this.bb.bytes().buffer, this.bb.bytes().byteOffset + this.bb.__vector(this.bb_pos + offset), this.bb.__vector_len(this.bb_pos + offset)) : null;
  }
  deviceName(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 10);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  static startLogin(builder) {
    builder.startObject(4);
  }
  static addUsername(builder, usernameOffset) {
    builder.addFieldOffset(0, usernameOffset, 0);
  }
  static addPassword(builder, passwordOffset) {
    builder.addFieldOffset(1, passwordOffset, 0);
  }
  static addToken(builder, tokenOffset) {
    builder.addFieldOffset(2, tokenOffset, 0);
  }
  static createTokenVector(builder, data) {
    builder.startVector(1, data.length, 1);
    for (let i = data.length - 1; i >= 0; i--) {
      builder.addInt8(data[i]);
    }
    return builder.endVector();
  }
  static startTokenVector(builder, numElems) {
    builder.startVector(1, numElems, 1);
  }
  static addDeviceName(builder, deviceNameOffset) {
    builder.addFieldOffset(3, deviceNameOffset, 0);
  }
  static endLogin(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createLogin(builder, usernameOffset, passwordOffset, tokenOffset, deviceNameOffset) {
    _Login.startLogin(builder);
    _Login.addUsername(builder, usernameOffset);
    _Login.addPassword(builder, passwordOffset);
    _Login.addToken(builder, tokenOffset);
    _Login.addDeviceName(builder, deviceNameOffset);
    return _Login.endLogin(builder);
  }
};

// src/generated/hotline/wire/fb/login-ok.ts
var LoginOk = class _LoginOk {
  constructor() {
    this.bb = null;
    this.bb_pos = 0;
  }
  __init(i, bb) {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }
  static getRootAsLoginOk(bb, obj) {
    return (obj || new _LoginOk()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  static getSizePrefixedRootAsLoginOk(bb, obj) {
    bb.setPosition(bb.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _LoginOk()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  userId() {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  deviceId() {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  /**
   * A resumable session token (32 random bytes); the server stores only its hash.
   */
  token(index) {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? this.bb.readUint8(this.bb.__vector(this.bb_pos + offset) + index) : 0;
  }
  tokenLength() {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? this.bb.__vector_len(this.bb_pos + offset) : 0;
  }
  tokenArray() {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? new Uint8Array(this.bb.bytes().buffer, this.bb.bytes().byteOffset + this.bb.__vector(this.bb_pos + offset), this.bb.__vector_len(this.bb_pos + offset)) : null;
  }
  /**
   * The highest seq in this user's inbox at login.
   */
  inboxSeq() {
    const offset = this.bb.__offset(this.bb_pos, 10);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  /**
   * This device's delivered cursor: everything after it is sent next, then live traffic.
   */
  deviceCursor() {
    const offset = this.bb.__offset(this.bb_pos, 12);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  /**
   * The server's epoch: stored, and bumped at every start of the server. Entries a device
   * received above its durable watermark (see `Deliver.durable_seq`) are tentative: after a
   * login that answers another epoch than the one they came under, the device drops them
   * and takes what the server sends again from its cursor.
   */
  epoch() {
    const offset = this.bb.__offset(this.bb_pos, 14);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  static startLoginOk(builder) {
    builder.startObject(6);
  }
  static addUserId(builder, userId) {
    builder.addFieldInt64(0, userId, BigInt("0"));
  }
  static addDeviceId(builder, deviceId) {
    builder.addFieldInt64(1, deviceId, BigInt("0"));
  }
  static addToken(builder, tokenOffset) {
    builder.addFieldOffset(2, tokenOffset, 0);
  }
  static createTokenVector(builder, data) {
    builder.startVector(1, data.length, 1);
    for (let i = data.length - 1; i >= 0; i--) {
      builder.addInt8(data[i]);
    }
    return builder.endVector();
  }
  static startTokenVector(builder, numElems) {
    builder.startVector(1, numElems, 1);
  }
  static addInboxSeq(builder, inboxSeq) {
    builder.addFieldInt64(3, inboxSeq, BigInt("0"));
  }
  static addDeviceCursor(builder, deviceCursor) {
    builder.addFieldInt64(4, deviceCursor, BigInt("0"));
  }
  static addEpoch(builder, epoch) {
    builder.addFieldInt64(5, epoch, BigInt("0"));
  }
  static endLoginOk(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createLoginOk(builder, userId, deviceId, tokenOffset, inboxSeq, deviceCursor, epoch) {
    _LoginOk.startLoginOk(builder);
    _LoginOk.addUserId(builder, userId);
    _LoginOk.addDeviceId(builder, deviceId);
    _LoginOk.addToken(builder, tokenOffset);
    _LoginOk.addInboxSeq(builder, inboxSeq);
    _LoginOk.addDeviceCursor(builder, deviceCursor);
    _LoginOk.addEpoch(builder, epoch);
    return _LoginOk.endLoginOk(builder);
  }
};

// src/generated/hotline/wire/fb/logout.ts
var Logout = class _Logout {
  constructor() {
    this.bb = null;
    this.bb_pos = 0;
  }
  __init(i, bb) {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }
  static getRootAsLogout(bb, obj) {
    return (obj || new _Logout()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  static getSizePrefixedRootAsLogout(bb, obj) {
    bb.setPosition(bb.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _Logout()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  static startLogout(builder) {
    builder.startObject(0);
  }
  static endLogout(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createLogout(builder) {
    _Logout.startLogout(builder);
    return _Logout.endLogout(builder);
  }
};

// src/generated/hotline/wire/fb/mark-read.ts
var MarkRead = class _MarkRead {
  constructor() {
    this.bb = null;
    this.bb_pos = 0;
  }
  __init(i, bb) {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }
  static getRootAsMarkRead(bb, obj) {
    return (obj || new _MarkRead()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  static getSizePrefixedRootAsMarkRead(bb, obj) {
    bb.setPosition(bb.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _MarkRead()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  conversation(obj) {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? (obj || new ConversationRef()).__init(this.bb_pos + offset, this.bb) : null;
  }
  upToSeq() {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  static startMarkRead(builder) {
    builder.startObject(2);
  }
  static addConversation(builder, conversationOffset) {
    builder.addFieldStruct(0, conversationOffset, 0);
  }
  static addUpToSeq(builder, upToSeq) {
    builder.addFieldInt64(1, upToSeq, BigInt("0"));
  }
  static endMarkRead(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createMarkRead(builder, conversationOffset, upToSeq) {
    _MarkRead.startMarkRead(builder);
    _MarkRead.addConversation(builder, conversationOffset);
    _MarkRead.addUpToSeq(builder, upToSeq);
    return _MarkRead.endMarkRead(builder);
  }
};

// src/generated/hotline/wire/fb/ping.ts
var Ping = class _Ping {
  constructor() {
    this.bb = null;
    this.bb_pos = 0;
  }
  __init(i, bb) {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }
  static getRootAsPing(bb, obj) {
    return (obj || new _Ping()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  static getSizePrefixedRootAsPing(bb, obj) {
    bb.setPosition(bb.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _Ping()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  nonce() {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  static startPing(builder) {
    builder.startObject(1);
  }
  static addNonce(builder, nonce) {
    builder.addFieldInt64(0, nonce, BigInt("0"));
  }
  static endPing(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createPing(builder, nonce) {
    _Ping.startPing(builder);
    _Ping.addNonce(builder, nonce);
    return _Ping.endPing(builder);
  }
};

// src/generated/hotline/wire/fb/pong.ts
var Pong = class _Pong {
  constructor() {
    this.bb = null;
    this.bb_pos = 0;
  }
  __init(i, bb) {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }
  static getRootAsPong(bb, obj) {
    return (obj || new _Pong()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  static getSizePrefixedRootAsPong(bb, obj) {
    bb.setPosition(bb.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _Pong()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  nonce() {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  static startPong(builder) {
    builder.startObject(1);
  }
  static addNonce(builder, nonce) {
    builder.addFieldInt64(0, nonce, BigInt("0"));
  }
  static endPong(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createPong(builder, nonce) {
    _Pong.startPong(builder);
    _Pong.addNonce(builder, nonce);
    return _Pong.endPong(builder);
  }
};

// src/generated/hotline/wire/fb/register.ts
var Register = class _Register {
  constructor() {
    this.bb = null;
    this.bb_pos = 0;
  }
  __init(i, bb) {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }
  static getRootAsRegister(bb, obj) {
    return (obj || new _Register()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  static getSizePrefixedRootAsRegister(bb, obj) {
    bb.setPosition(bb.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _Register()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  username(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  password(optionalEncoding) {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.__string(this.bb_pos + offset, optionalEncoding) : null;
  }
  static startRegister(builder) {
    builder.startObject(2);
  }
  static addUsername(builder, usernameOffset) {
    builder.addFieldOffset(0, usernameOffset, 0);
  }
  static addPassword(builder, passwordOffset) {
    builder.addFieldOffset(1, passwordOffset, 0);
  }
  static endRegister(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createRegister(builder, usernameOffset, passwordOffset) {
    _Register.startRegister(builder);
    _Register.addUsername(builder, usernameOffset);
    _Register.addPassword(builder, passwordOffset);
    return _Register.endRegister(builder);
  }
};

// src/generated/hotline/wire/fb/register-ok.ts
var RegisterOk = class _RegisterOk {
  constructor() {
    this.bb = null;
    this.bb_pos = 0;
  }
  __init(i, bb) {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }
  static getRootAsRegisterOk(bb, obj) {
    return (obj || new _RegisterOk()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  static getSizePrefixedRootAsRegisterOk(bb, obj) {
    bb.setPosition(bb.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _RegisterOk()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  userId() {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  static startRegisterOk(builder) {
    builder.startObject(1);
  }
  static addUserId(builder, userId) {
    builder.addFieldInt64(0, userId, BigInt("0"));
  }
  static endRegisterOk(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createRegisterOk(builder, userId) {
    _RegisterOk.startRegisterOk(builder);
    _RegisterOk.addUserId(builder, userId);
    return _RegisterOk.endRegisterOk(builder);
  }
};

// src/generated/hotline/wire/fb/send.ts
var Send = class _Send {
  constructor() {
    this.bb = null;
    this.bb_pos = 0;
  }
  __init(i, bb) {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }
  static getRootAsSend(bb, obj) {
    return (obj || new _Send()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  static getSizePrefixedRootAsSend(bb, obj) {
    bb.setPosition(bb.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _Send()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  /**
   * Chosen by the client, unique per sender; a retry with the same id is stored once.
   */
  clientMsgId() {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  /**
   * Recipient user id.
   */
  to() {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  /**
   * Opaque bytes; the server never reads them (clients may encrypt end to end).
   */
  payload(index) {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? this.bb.readUint8(this.bb.__vector(this.bb_pos + offset) + index) : 0;
  }
  payloadLength() {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? this.bb.__vector_len(this.bb_pos + offset) : 0;
  }
  payloadArray() {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? new Uint8Array(this.bb.bytes().buffer, this.bb.bytes().byteOffset + this.bb.__vector(this.bb_pos + offset), this.bb.__vector_len(this.bb_pos + offset)) : null;
  }
  flags() {
    const offset = this.bb.__offset(this.bb_pos, 10);
    return offset ? this.bb.readUint8(this.bb_pos + offset) : 1 /* DeliveryReceipt */;
  }
  /**
   * Non-zero: send to this group instead (`to` must then be 0). The sender must be a member.
   */
  group() {
    const offset = this.bb.__offset(this.bb_pos, 12);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  kind() {
    const offset = this.bb.__offset(this.bb_pos, 14);
    return offset ? this.bb.readUint8(this.bb_pos + offset) : 0 /* Normal */;
  }
  /**
   * Edit and Delete: the message id of the original, which the sender must have sent in
   * the same conversation. 0 for Normal.
   */
  refersTo() {
    const offset = this.bb.__offset(this.bb_pos, 16);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  static startSend(builder) {
    builder.startObject(7);
  }
  static addClientMsgId(builder, clientMsgId) {
    builder.addFieldInt64(0, clientMsgId, BigInt("0"));
  }
  static addTo(builder, to) {
    builder.addFieldInt64(1, to, BigInt("0"));
  }
  static addPayload(builder, payloadOffset) {
    builder.addFieldOffset(2, payloadOffset, 0);
  }
  static createPayloadVector(builder, data) {
    builder.startVector(1, data.length, 1);
    for (let i = data.length - 1; i >= 0; i--) {
      builder.addInt8(data[i]);
    }
    return builder.endVector();
  }
  static startPayloadVector(builder, numElems) {
    builder.startVector(1, numElems, 1);
  }
  static addFlags(builder, flags) {
    builder.addFieldInt8(3, flags, 1 /* DeliveryReceipt */);
  }
  static addGroup(builder, group) {
    builder.addFieldInt64(4, group, BigInt("0"));
  }
  static addKind(builder, kind) {
    builder.addFieldInt8(5, kind, 0 /* Normal */);
  }
  static addRefersTo(builder, refersTo) {
    builder.addFieldInt64(6, refersTo, BigInt("0"));
  }
  static endSend(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createSend(builder, clientMsgId, to, payloadOffset, flags, group, kind, refersTo) {
    _Send.startSend(builder);
    _Send.addClientMsgId(builder, clientMsgId);
    _Send.addTo(builder, to);
    _Send.addPayload(builder, payloadOffset);
    _Send.addFlags(builder, flags);
    _Send.addGroup(builder, group);
    _Send.addKind(builder, kind);
    _Send.addRefersTo(builder, refersTo);
    return _Send.endSend(builder);
  }
};

// src/generated/hotline/wire/fb/send-ack.ts
var SendAck = class _SendAck {
  constructor() {
    this.bb = null;
    this.bb_pos = 0;
  }
  __init(i, bb) {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }
  static getRootAsSendAck(bb, obj) {
    return (obj || new _SendAck()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  static getSizePrefixedRootAsSendAck(bb, obj) {
    bb.setPosition(bb.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _SendAck()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  clientMsgId() {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  messageId() {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  /**
   * Seq of the copy in the sender's own inbox.
   */
  inboxSeq() {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  /**
   * Server time at which the message was accepted, microseconds since the Unix epoch.
   */
  timestampUs() {
    const offset = this.bb.__offset(this.bb_pos, 10);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  static startSendAck(builder) {
    builder.startObject(4);
  }
  static addClientMsgId(builder, clientMsgId) {
    builder.addFieldInt64(0, clientMsgId, BigInt("0"));
  }
  static addMessageId(builder, messageId) {
    builder.addFieldInt64(1, messageId, BigInt("0"));
  }
  static addInboxSeq(builder, inboxSeq) {
    builder.addFieldInt64(2, inboxSeq, BigInt("0"));
  }
  static addTimestampUs(builder, timestampUs) {
    builder.addFieldInt64(3, timestampUs, BigInt("0"));
  }
  static endSendAck(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createSendAck(builder, clientMsgId, messageId, inboxSeq, timestampUs) {
    _SendAck.startSendAck(builder);
    _SendAck.addClientMsgId(builder, clientMsgId);
    _SendAck.addMessageId(builder, messageId);
    _SendAck.addInboxSeq(builder, inboxSeq);
    _SendAck.addTimestampUs(builder, timestampUs);
    return _SendAck.endSendAck(builder);
  }
};

// src/generated/hotline/wire/fb/sync.ts
var Sync = class _Sync {
  constructor() {
    this.bb = null;
    this.bb_pos = 0;
  }
  __init(i, bb) {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }
  static getRootAsSync(bb, obj) {
    return (obj || new _Sync()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  static getSizePrefixedRootAsSync(bb, obj) {
    bb.setPosition(bb.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _Sync()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  afterSeq() {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  limit() {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.readUint32(this.bb_pos + offset) : 0;
  }
  static startSync(builder) {
    builder.startObject(2);
  }
  static addAfterSeq(builder, afterSeq) {
    builder.addFieldInt64(0, afterSeq, BigInt("0"));
  }
  static addLimit(builder, limit) {
    builder.addFieldInt32(1, limit, 0);
  }
  static endSync(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createSync(builder, afterSeq, limit) {
    _Sync.startSync(builder);
    _Sync.addAfterSeq(builder, afterSeq);
    _Sync.addLimit(builder, limit);
    return _Sync.endSync(builder);
  }
};

// src/generated/hotline/wire/fb/sync-page.ts
var SyncPage = class _SyncPage {
  constructor() {
    this.bb = null;
    this.bb_pos = 0;
  }
  __init(i, bb) {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }
  static getRootAsSyncPage(bb, obj) {
    return (obj || new _SyncPage()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  static getSizePrefixedRootAsSyncPage(bb, obj) {
    bb.setPosition(bb.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _SyncPage()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  messages(index, obj) {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? (obj || new Deliver()).__init(this.bb.__indirect(this.bb.__vector(this.bb_pos + offset) + index * 4), this.bb) : null;
  }
  messagesLength() {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.__vector_len(this.bb_pos + offset) : 0;
  }
  /**
   * The inbox head when the page was read.
   */
  inboxSeq() {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  /**
   * More messages follow the last one in this page.
   */
  more() {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? !!this.bb.readInt8(this.bb_pos + offset) : false;
  }
  static startSyncPage(builder) {
    builder.startObject(3);
  }
  static addMessages(builder, messagesOffset) {
    builder.addFieldOffset(0, messagesOffset, 0);
  }
  static createMessagesVector(builder, data) {
    builder.startVector(4, data.length, 4);
    for (let i = data.length - 1; i >= 0; i--) {
      builder.addOffset(data[i]);
    }
    return builder.endVector();
  }
  static startMessagesVector(builder, numElems) {
    builder.startVector(4, numElems, 4);
  }
  static addInboxSeq(builder, inboxSeq) {
    builder.addFieldInt64(1, inboxSeq, BigInt("0"));
  }
  static addMore(builder, more) {
    builder.addFieldInt8(2, +more, 0);
  }
  static endSyncPage(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static createSyncPage(builder, messagesOffset, inboxSeq, more) {
    _SyncPage.startSyncPage(builder);
    _SyncPage.addMessages(builder, messagesOffset);
    _SyncPage.addInboxSeq(builder, inboxSeq);
    _SyncPage.addMore(builder, more);
    return _SyncPage.endSyncPage(builder);
  }
};

// src/generated/hotline/wire/fb/frame.ts
var Frame = class _Frame {
  constructor() {
    this.bb = null;
    this.bb_pos = 0;
  }
  __init(i, bb) {
    this.bb_pos = i;
    this.bb = bb;
    return this;
  }
  static getRootAsFrame(bb, obj) {
    return (obj || new _Frame()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  static getSizePrefixedRootAsFrame(bb, obj) {
    bb.setPosition(bb.position() + SIZE_PREFIX_LENGTH);
    return (obj || new _Frame()).__init(bb.readInt32(bb.position()) + bb.position(), bb);
  }
  /**
   * Echoed by the reply; 0 for server pushes and for requests that want no reply.
   */
  requestId() {
    const offset = this.bb.__offset(this.bb_pos, 4);
    return offset ? this.bb.readUint64(this.bb_pos + offset) : BigInt("0");
  }
  bodyType() {
    const offset = this.bb.__offset(this.bb_pos, 6);
    return offset ? this.bb.readUint8(this.bb_pos + offset) : 0 /* NONE */;
  }
  body(obj) {
    const offset = this.bb.__offset(this.bb_pos, 8);
    return offset ? this.bb.__union(obj, this.bb_pos + offset) : null;
  }
  static startFrame(builder) {
    builder.startObject(3);
  }
  static addRequestId(builder, requestId) {
    builder.addFieldInt64(0, requestId, BigInt("0"));
  }
  static addBodyType(builder, bodyType) {
    builder.addFieldInt8(1, bodyType, 0 /* NONE */);
  }
  static addBody(builder, bodyOffset) {
    builder.addFieldOffset(2, bodyOffset, 0);
  }
  static endFrame(builder) {
    const offset = builder.endObject();
    return offset;
  }
  static finishFrameBuffer(builder, offset) {
    builder.finish(offset);
  }
  static finishSizePrefixedFrameBuffer(builder, offset) {
    builder.finish(offset, void 0, true);
  }
  static createFrame(builder, requestId, bodyType, bodyOffset) {
    _Frame.startFrame(builder);
    _Frame.addRequestId(builder, requestId);
    _Frame.addBodyType(builder, bodyType);
    _Frame.addBody(builder, bodyOffset);
    return _Frame.endFrame(builder);
  }
};

// src/session.ts
var PROTOCOL_VERSION_MIN = 1;
var PROTOCOL_VERSION = 1;
var REQUEST_ID_NONE = 0n;
var HotlineError = class extends Error {
  constructor(code, message, retryAfterMs = 0) {
    super(`${ErrorCode[code] ?? code}: ${message}`);
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }
};
var HotlineSession = class _HotlineSession {
  constructor(ws) {
    this.ws = ws;
    /** Called for every Deliver the server pushes. */
    this.onDeliver = () => {
    };
    /** Called when another device of this user moved a read position (a `ReadPosition` push). */
    this.onReadPosition = () => {
    };
    /** Called when the durable watermark moved (a `Durable` push). */
    this.onDurable = () => {
    };
    /** Every inbox entry up to this seq is durable; the ones above are tentative. */
    this.durableSeq = 0n;
    /** The server announced an epoch: it delivers early, and `durableSeq` is what it said. */
    this.earlyDelivery = false;
    /** Called once when the connection ends (with the server's last error, if any). */
    this.onClose = () => {
    };
    /** The server's limits from HelloOk. */
    this.payloadBytesMax = 0;
    this.nextRequestId = 1n;
    this.nextClientMsgId = BigInt(Date.now()) * 1000n;
    this.pending = /* @__PURE__ */ new Map();
    this.closed = false;
    this.lastError = "";
    ws.binaryType = "arraybuffer";
    ws.onmessage = (ev) => this.receive(new Uint8Array(ev.data));
    ws.onclose = (ev) => this.finish(this.lastError || `connection closed (${ev.code})`);
    ws.onerror = () => this.finish(this.lastError || "connection failed");
  }
  /** Opens the WebSocket and completes Hello. */
  static async connect(url, clientName = "hotline-web") {
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error(`cannot open ${url}`));
    });
    const session2 = new _HotlineSession(ws);
    const reply = await session2.request((b) => {
      const name = b.createString(clientName);
      return [1 /* Hello */, Hello.createHello(b, PROTOCOL_VERSION_MIN, PROTOCOL_VERSION, name)];
    });
    const ok = reply.body(new HelloOk());
    session2.payloadBytesMax = ok.limits()?.payloadBytesMax() ?? 0;
    return session2;
  }
  /** Creates an account; resolves to its user id. */
  async register(username, password) {
    const reply = await this.request((b) => {
      const u = b.createString(username);
      const p = b.createString(password);
      return [3 /* Register */, Register.createRegister(b, u, p)];
    });
    return reply.body(new RegisterOk()).userId();
  }
  /** Logs in with a password on a new device. */
  async login(username, password, deviceName) {
    return this.loginWith((b) => {
      const u = b.createString(username);
      const p = b.createString(password);
      const d = b.createString(deviceName);
      Login.startLogin(b);
      Login.addUsername(b, u);
      Login.addPassword(b, p);
      Login.addDeviceName(b, d);
      return Login.endLogin(b);
    });
  }
  /** Resumes the device a token was issued to. */
  async loginToken(token, deviceName) {
    return this.loginWith((b) => {
      const t = Login.createTokenVector(b, token);
      const d = b.createString(deviceName);
      Login.startLogin(b);
      Login.addToken(b, t);
      Login.addDeviceName(b, d);
      return Login.endLogin(b);
    });
  }
  async loginWith(build) {
    const reply = await this.request((b) => [5 /* Login */, build(b)]);
    const ok = reply.body(new LoginOk());
    this.earlyDelivery = ok.epoch() !== 0n;
    this.durableSeq = this.earlyDelivery ? ok.deviceCursor() : ok.inboxSeq();
    return {
      userId: ok.userId(),
      deviceId: ok.deviceId(),
      token: ok.tokenArray()?.slice() ?? new Uint8Array(),
      inboxSeq: ok.inboxSeq(),
      deviceCursor: ok.deviceCursor(),
      epoch: ok.epoch()
    };
  }
  /** Sends an opaque payload to a user; resolves once it is durable. */
  async send(to, payload) {
    const clientMsgId = this.nextClientMsgId++;
    const reply = await this.request((b) => {
      const p = Send.createPayloadVector(b, payload);
      return [9 /* Send */, Send.createSend(b, clientMsgId, to, p, 0, 0n, 0 /* Normal */, 0n)];
    });
    const ack = reply.body(new SendAck());
    this.learnDurable(ack.inboxSeq());
    return {
      clientMsgId: ack.clientMsgId(),
      messageId: ack.messageId(),
      inboxSeq: ack.inboxSeq(),
      timestampUs: ack.timestampUs()
    };
  }
  /** Acknowledges everything up to `upToSeq`. `confirmed`: wait until the cursor is durable. */
  async ack(upToSeq, confirmed = false) {
    const build = (b) => [12 /* Ack */, Ack.createAck(b, upToSeq)];
    if (confirmed) {
      const reply = await this.request(build);
      reply.body(new AckOk());
    } else {
      this.write(REQUEST_ID_NONE, build);
    }
  }
  /** How far a device holding everything up to `heldSeq` may acknowledge: only what is
   * also durable (`durableSeq`). */
  ackable(heldSeq) {
    return heldSeq < this.durableSeq ? heldSeq : this.durableSeq;
  }
  learnDurable(seq) {
    if (seq > this.durableSeq) this.durableSeq = seq;
  }
  /** One page of this user's inbox after `afterSeq`. */
  async sync(afterSeq, limit) {
    const reply = await this.request((b) => [13 /* Sync */, Sync.createSync(b, afterSeq, limit)]);
    const page = reply.body(new SyncPage());
    const messages = [];
    for (let i = 0; i < page.messagesLength(); i++) {
      const d = page.messages(i);
      if (d) messages.push(toMessage(d));
    }
    this.learnDurable(page.inboxSeq());
    return { messages, inboxSeq: page.inboxSeq(), more: page.more() };
  }
  /** Marks `conversation` read up to its inbox entry `upToSeq`; every device of this user
   * sees the new position (the others through `onReadPosition`). */
  async markRead(conversation2, upToSeq) {
    const reply = await this.request((b) => {
      MarkRead.startMarkRead(b);
      MarkRead.addConversation(b, ConversationRef.createConversationRef(b, conversation2.kind, conversation2.id));
      MarkRead.addUpToSeq(b, upToSeq);
      return [30 /* MarkRead */, MarkRead.endMarkRead(b)];
    });
    return toReadState(reply.body(new ReadPosition()));
  }
  /** Every conversation of this user with its read position and unread count. */
  async conversations() {
    const all = [];
    let after = { kind: 0 /* Direct */, id: 0n };
    for (; ; ) {
      const from = after;
      const reply = await this.request((b) => {
        Conversations.startConversations(b);
        Conversations.addAfter(b, ConversationRef.createConversationRef(b, from.kind, from.id));
        return [32 /* Conversations */, Conversations.endConversations(b)];
      });
      const list = reply.body(new ConversationList());
      for (let i = 0; i < list.conversationsLength(); i++) {
        const r = list.conversations(i);
        if (r) all.push(toReadState(r));
      }
      if (!list.more() || all.length === 0) return all;
      after = all[all.length - 1].conversation;
    }
  }
  /** Revokes this device's token and closes. */
  async logout() {
    await this.request((b) => {
      Logout.startLogout(b);
      return [7 /* Logout */, Logout.endLogout(b)];
    });
  }
  close() {
    this.ws.close();
  }
  request(build) {
    if (this.closed) return Promise.reject(new Error(this.lastError || "connection closed"));
    const requestId = this.nextRequestId++;
    const promise = new Promise((resolve, reject) => this.pending.set(requestId, { resolve, reject }));
    this.write(requestId, build);
    return promise;
  }
  write(requestId, build) {
    const b = new Builder(256);
    const [type, body] = build(b);
    b.finish(Frame.createFrame(b, requestId, type, body));
    this.ws.send(b.asUint8Array());
  }
  receive(bytes) {
    const frame = Frame.getRootAsFrame(new ByteBuffer(bytes));
    const requestId = frame.requestId();
    const type = frame.bodyType();
    if (type === 11 /* Deliver */) {
      const m = toMessage(frame.body(new Deliver()));
      this.learnDurable(this.earlyDelivery ? m.durableSeq : m.inboxSeq);
      this.onDeliver(m);
      return;
    }
    if (type === 39 /* Durable */) {
      const seq = frame.body(new Durable()).inboxSeq();
      this.learnDurable(seq);
      this.onDurable(seq);
      return;
    }
    if (type === 31 /* ReadPosition */ && requestId === REQUEST_ID_NONE) {
      this.onReadPosition(toReadState(frame.body(new ReadPosition())));
      return;
    }
    if (type === 15 /* Ping */) {
      const nonce = frame.body(new Ping()).nonce();
      this.write(REQUEST_ID_NONE, (b) => [16 /* Pong */, Pong.createPong(b, nonce)]);
      return;
    }
    if (type === 17 /* Error */) {
      const e = frame.body(new Error2());
      const error = new HotlineError(e.code(), e.message() ?? "", e.retryAfterMs());
      this.lastError = error.message;
      const waiter2 = this.pending.get(requestId);
      if (waiter2) {
        this.pending.delete(requestId);
        waiter2.reject(error);
      }
      return;
    }
    const waiter = this.pending.get(requestId);
    if (waiter) {
      this.pending.delete(requestId);
      waiter.resolve(frame);
    }
  }
  finish(why) {
    if (this.closed) return;
    this.closed = true;
    for (const waiter of this.pending.values()) waiter.reject(new Error(why));
    this.pending.clear();
    this.onClose(why);
  }
};
function toMessage(d) {
  const conversation2 = d.conversation();
  return {
    messageId: d.messageId(),
    conversation: {
      kind: conversation2?.kind() ?? 0 /* Direct */,
      id: conversation2?.id() ?? 0n
    },
    sender: d.sender(),
    senderDevice: d.senderDevice(),
    inboxSeq: d.inboxSeq(),
    timestampUs: d.timestampUs(),
    payload: d.payloadArray()?.slice() ?? new Uint8Array(),
    clientMsgId: d.clientMsgId(),
    durableSeq: d.durableSeq()
  };
}
function toReadState(r) {
  const conversation2 = r.conversation();
  return {
    conversation: { kind: conversation2?.kind() ?? 0 /* Direct */, id: conversation2?.id() ?? 0n },
    readSeq: r.readSeq(),
    unread: r.unread(),
    lastSeq: r.lastSeq()
  };
}

// src/chat.ts
var SYNC_PAGE_MESSAGES = 256;
var TOKEN_KEY = "hotline.token";
var USERNAME_KEY = "hotline.username";
var $ = (id) => document.getElementById(id);
var encoder = new TextEncoder();
var decoder = new TextDecoder();
var session = null;
var me = { userId: 0n, username: "" };
var open = null;
var ackedSeq = 0n;
var conversations = /* @__PURE__ */ new Map();
var readSeqs = /* @__PURE__ */ new Map();
function status(text) {
  $("status").textContent = text;
}
function wsUrl() {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/`;
}
function readSeq(peer) {
  return readSeqs.get(peer) ?? 0n;
}
function learnRead(r) {
  if (r.conversation.kind !== 0 /* Direct */) return;
  if (r.readSeq > readSeq(r.conversation.id)) readSeqs.set(r.conversation.id, r.readSeq);
}
function decode(payload) {
  const raw = decoder.decode(payload);
  try {
    const parsed = JSON.parse(raw);
    if (typeof parsed.text === "string") {
      return { text: parsed.text, from: typeof parsed.from === "string" ? parsed.from : void 0 };
    }
  } catch {
  }
  return { text: raw };
}
function conversation(peer) {
  let c = conversations.get(peer);
  if (!c) {
    c = { peer, name: `user ${peer}`, entries: /* @__PURE__ */ new Map() };
    conversations.set(peer, c);
  }
  return c;
}
function add(m) {
  if (m.conversation.kind !== 0 /* Direct */) return;
  const c = conversation(m.conversation.id);
  if (c.entries.has(m.inboxSeq)) return;
  const mine = m.sender === me.userId;
  const body = decode(m.payload);
  if (!mine && body.from) c.name = body.from;
  c.entries.set(m.inboxSeq, {
    seq: m.inboxSeq,
    mine,
    from: mine ? me.username : body.from ?? `user ${m.sender}`,
    text: body.text
  });
}
function unread(c) {
  const read = readSeq(c.peer);
  let n = 0;
  for (const e of c.entries.values()) if (!e.mine && e.seq > read) n++;
  return n;
}
function markRead(c) {
  const last = lastSeq(c);
  if (!session || last <= readSeq(c.peer)) return;
  readSeqs.set(c.peer, last);
  session.markRead({ kind: 0 /* Direct */, id: c.peer }, last).then((r) => {
    learnRead(r);
    render();
  }).catch(() => {
  });
}
function render() {
  const list = $("convs");
  list.replaceChildren();
  const ordered = [...conversations.values()].sort((a, b) => Number(lastSeq(b) - lastSeq(a)));
  for (const c2 of ordered) {
    const li = document.createElement("li");
    li.className = "conv" + (c2.peer === open ? " open" : "");
    li.dataset.peer = c2.peer.toString();
    li.dataset.lastSeq = lastSeq(c2).toString();
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = c2.name;
    const badge = document.createElement("span");
    badge.className = "unread";
    const n = c2.peer === open ? 0 : unread(c2);
    badge.textContent = n > 0 ? String(n) : "";
    li.append(name, badge);
    li.onclick = () => openConversation(c2.peer);
    list.append(li);
  }
  const messages = $("messages");
  messages.replaceChildren();
  if (open === null) return;
  const c = conversation(open);
  $("title").textContent = `${c.name} (user ${c.peer})`;
  const entries = [...c.entries.values()].sort((a, b) => a.seq < b.seq ? -1 : 1);
  for (const e of entries) {
    const li = document.createElement("li");
    li.className = e.mine ? "mine" : "theirs";
    li.dataset.seq = e.seq.toString();
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = e.from;
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = e.text;
    li.append(who, text);
    messages.append(li);
  }
  messages.scrollTop = messages.scrollHeight;
}
function lastSeq(c) {
  let max = 0n;
  for (const seq of c.entries.keys()) if (seq > max) max = seq;
  return max;
}
function openConversation(peer) {
  open = peer;
  markRead(conversation(peer));
  $("text").disabled = false;
  $("send-btn").disabled = false;
  render();
  $("text").focus();
}
function ackHeld() {
  let max = ackedSeq;
  for (const c of conversations.values()) {
    const seq2 = lastSeq(c);
    if (seq2 > max) max = seq2;
  }
  const seq = session ? session.ackable(max) : 0n;
  if (session && seq > ackedSeq) {
    ackedSeq = seq;
    void session.ack(seq).catch(() => {
    });
  }
}
async function start(login, username) {
  const s = await HotlineSession.connect(wsUrl());
  s.onDeliver = (m) => {
    add(m);
    if (m.conversation.id === open) markRead(conversation(open));
    render();
    ackHeld();
  };
  s.onReadPosition = (r) => {
    learnRead(r);
    render();
  };
  s.onDurable = () => ackHeld();
  s.onClose = (why) => {
    if (session === s) {
      session = null;
      $("me").textContent = `${me.username}: disconnected (${why}); reload to reconnect`;
    }
  };
  const logged = await login(s);
  session = s;
  me = { userId: logged.userId, username };
  localStorage.setItem(TOKEN_KEY, toHex(logged.token));
  localStorage.setItem(USERNAME_KEY, username);
  $("me").textContent = `${username} (user ${logged.userId})`;
  $("me").dataset.userId = logged.userId.toString();
  $("login-form").hidden = true;
  $("chat").hidden = false;
  $("logout-btn").hidden = false;
  let after = 0n;
  for (; ; ) {
    const page = await s.sync(after, SYNC_PAGE_MESSAGES);
    for (const m of page.messages) {
      add(m);
      after = m.inboxSeq;
    }
    if (!page.more || page.messages.length === 0) break;
  }
  for (const r of await s.conversations()) learnRead(r);
  render();
  ackHeld();
}
function toHex(bytes) {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}
function fromHex(hex) {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}
function describe(e) {
  return e instanceof HotlineError || e instanceof Error ? e.message : String(e);
}
async function withPassword(register) {
  const username = $("username").value.trim();
  const password = $("password").value;
  if (!username || !password) return status("username and password, please");
  status("");
  try {
    await start(async (s) => {
      if (register) await s.register(username, password);
      return s.login(username, password, navigator.userAgent.slice(0, 60));
    }, username);
  } catch (e) {
    status(describe(e));
  }
}
async function send() {
  const input = $("text");
  const text = input.value;
  if (!session || open === null || !text) return;
  const to = open;
  input.value = "";
  try {
    const payload = encoder.encode(JSON.stringify({ text, from: me.username }));
    const ack = await session.send(to, payload);
    conversation(to).entries.set(ack.inboxSeq, { seq: ack.inboxSeq, mine: true, from: me.username, text });
    markRead(conversation(to));
    render();
    ackHeld();
  } catch (e) {
    input.value = text;
    $("title").textContent = `not sent: ${describe(e)}`;
  }
}
$("login-form").onsubmit = (ev) => {
  ev.preventDefault();
  void withPassword(false);
};
$("register-btn").onclick = () => void withPassword(true);
$("composer").onsubmit = (ev) => {
  ev.preventDefault();
  void send();
};
$("new-chat").onsubmit = (ev) => {
  ev.preventDefault();
  const raw = $("new-peer").value.trim();
  if (/^[0-9]+$/.test(raw) && raw !== "0") openConversation(BigInt(raw));
};
$("logout-btn").onclick = async () => {
  try {
    await session?.logout();
  } catch {
  }
  localStorage.removeItem(TOKEN_KEY);
  location.reload();
};
var savedToken = localStorage.getItem(TOKEN_KEY);
var savedName = localStorage.getItem(USERNAME_KEY);
if (savedToken && savedName) {
  start((s) => s.loginToken(fromHex(savedToken), "browser"), savedName).catch((e) => {
    localStorage.removeItem(TOKEN_KEY);
    status(`please log in again (${describe(e)})`);
  });
}
