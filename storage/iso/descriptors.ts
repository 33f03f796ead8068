// Volume descriptors (ECMA-119 8.4, 8.5, 8.3): the primary one, the Joliet
// supplementary one and the set terminator, one sector each.
import { SECTOR, UNSPECIFIED_LONG_DATE, longDate, writeBoth16, writeBoth32 } from './bytes.ts';

const TYPE_PRIMARY = 1;
const TYPE_SUPPLEMENTARY = 2;
const TYPE_TERMINATOR = 255;
/** Joliet's escape sequence for UCS-2 Level 3. */
const JOLIET_ESCAPE = Buffer.from('%/E', 'latin1');
const APPLICATION_ID = 'HEARTH';

export interface DescriptorFields {
  volumeSectors: number;
  /** Volume identifier as this descriptor's character set allows it. */
  volumeId: string;
  pathTableSize: number;
  lPathTableLba: number;
  mPathTableLba: number;
  rootRecord: Buffer;
  createdMs: number;
}

export function primaryDescriptor(fields: DescriptorFields): Buffer {
  return descriptor(TYPE_PRIMARY, fields, asciiField);
}

export function jolietDescriptor(fields: DescriptorFields): Buffer {
  const sector = descriptor(TYPE_SUPPLEMENTARY, fields, ucs2Field);
  JOLIET_ESCAPE.copy(sector, 88);
  return sector;
}

export function terminatorDescriptor(): Buffer {
  return header(TYPE_TERMINATOR);
}

function header(type: number): Buffer {
  const sector = Buffer.alloc(SECTOR);
  sector[0] = type;
  sector.write('CD001', 1, 'latin1');
  sector[6] = 1;
  return sector;
}

function descriptor(type: number, fields: DescriptorFields, text: (value: string, length: number) => Buffer): Buffer {
  const sector = header(type);
  text('', 32).copy(sector, 8); // system identifier
  text(fields.volumeId, 32).copy(sector, 40);
  writeBoth32(sector, 80, fields.volumeSectors);
  writeBoth16(sector, 120, 1); // volume set size
  writeBoth16(sector, 124, 1); // volume sequence number
  writeBoth16(sector, 128, SECTOR);
  writeBoth32(sector, 132, fields.pathTableSize);
  sector.writeUInt32LE(fields.lPathTableLba, 140);
  sector.writeUInt32BE(fields.mPathTableLba, 148);
  fields.rootRecord.copy(sector, 156);
  text('', 128).copy(sector, 190); // volume set
  text('', 128).copy(sector, 318); // publisher
  text('', 128).copy(sector, 446); // data preparer
  text(APPLICATION_ID, 128).copy(sector, 574);
  text('', 37).copy(sector, 702); // copyright file
  text('', 37).copy(sector, 739); // abstract file
  text('', 37).copy(sector, 776); // bibliographic file
  const created = longDate(fields.createdMs);
  created.copy(sector, 813);
  created.copy(sector, 830); // modification
  UNSPECIFIED_LONG_DATE.copy(sector, 847); // expiration
  UNSPECIFIED_LONG_DATE.copy(sector, 864); // effective
  sector[881] = 1; // file structure version
  return sector;
}

function asciiField(value: string, length: number): Buffer {
  return Buffer.from(value.padEnd(length, ' ').slice(0, length), 'latin1');
}

/** UCS-2BE padded with spaces; an odd-length field ends in a zero byte. */
function ucs2Field(value: string, length: number): Buffer {
  const field = Buffer.alloc(length);
  const units = Math.floor(length / 2);
  const text = value.padEnd(units, ' ').slice(0, units);
  for (let i = 0; i < units; i++) field.writeUInt16BE(text.charCodeAt(i), i * 2);
  return field;
}
