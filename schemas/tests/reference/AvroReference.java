// What Avro for Java, the reference implementation, makes of hostledger's schemas and events.
// Run as a single source file (java -cp "JARS/*" AvroReference.java ...) by the codec tests.
//
//   fingerprint SCHEMA...        one line per schema file: FILE <tab> CRC-64-AVRO fingerprint
//                                (unsigned hex) <tab> Parsing Canonical Form
//   decode SCHEMA MESSAGE...     one line per message file: the event, decoded with Avro's own
//                                single-object decoder (BinaryMessageDecoder), as JSON
//   resolve READER MESSAGE WRITER...
//                                the message decoded by that decoder with READER as its reader
//                                schema and each WRITER added to its schema store, as JSON

import java.nio.file.Files;
import java.nio.file.Path;

import org.apache.avro.Schema;
import org.apache.avro.SchemaNormalization;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.message.BinaryMessageDecoder;

public class AvroReference {
    public static void main(String[] args) throws Exception {
        if (args.length >= 2 && args[0].equals("fingerprint")) {
            for (int i = 1; i < args.length; i++) {
                Schema schema = new Schema.Parser().parse(Files.readString(Path.of(args[i])));
                long fingerprint = SchemaNormalization.parsingFingerprint64(schema);
                System.out.println(args[i] + "\t" + Long.toUnsignedString(fingerprint, 16) + "\t"
                        + SchemaNormalization.toParsingForm(schema));
            }
        } else if (args.length >= 3 && args[0].equals("decode")) {
            Schema schema = new Schema.Parser().parse(Files.readString(Path.of(args[1])));
            BinaryMessageDecoder<GenericRecord> decoder =
                    new BinaryMessageDecoder<>(GenericData.get(), schema);
            for (int i = 2; i < args.length; i++) {
                System.out.println(decoder.decode(Files.readAllBytes(Path.of(args[i]))));
            }
        } else if (args.length >= 4 && args[0].equals("resolve")) {
            Schema reader = new Schema.Parser().parse(Files.readString(Path.of(args[1])));
            BinaryMessageDecoder<GenericRecord> decoder =
                    new BinaryMessageDecoder<>(GenericData.get(), reader);
            for (int i = 3; i < args.length; i++) {
                decoder.addSchema(new Schema.Parser().parse(Files.readString(Path.of(args[i]))));
            }
            System.out.println(decoder.decode(Files.readAllBytes(Path.of(args[2]))));
        } else {
            System.err.println("usage: AvroReference fingerprint SCHEMA... | decode SCHEMA MESSAGE..."
                    + " | resolve READER MESSAGE WRITER...");
            System.exit(2);
        }
    }
}
