package io.strom.flink.types;

import java.util.ArrayList;
import java.util.List;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.logical.ArrayType;
import org.apache.flink.table.types.logical.BinaryType;
import org.apache.flink.table.types.logical.CharType;
import org.apache.flink.table.types.logical.DecimalType;
import org.apache.flink.table.types.logical.LocalZonedTimestampType;
import org.apache.flink.table.types.logical.LogicalType;
import org.apache.flink.table.types.logical.MapType;
import org.apache.flink.table.types.logical.RowType;
import org.apache.flink.table.types.logical.TimeType;
import org.apache.flink.table.types.logical.TimestampType;
import org.apache.flink.table.types.logical.VarBinaryType;
import org.apache.flink.table.types.logical.VarCharType;

/**
 * Flink types ↔ the SQL type names of Strom's {@code create_table} and {@code get_table}
 * (docs/protocol.md; the node's parser is {@code server/src/catalog/types.rs}).
 *
 * <p>Flink → Strom writes the node's normalized spelling, so what {@code get_table} echoes
 * parses back to the same Flink type: {@code VARCHAR(MAX)} is {@code STRING}, {@code
 * VARBINARY(MAX)} is {@code BYTES}, nested nullability is kept as {@code NOT NULL}. Two things
 * do not survive a round trip, because the node does not store them: ROW field descriptions,
 * and a map key declared {@code NOT NULL} (the node makes every map key non-null and does not
 * spell it; it reads back as Flink's default, nullable).
 *
 * <p>Strom → Flink also accepts what other clients (pyarrow scripts) may have sent: {@code
 * VARCHAR} and {@code CHAR} without a length hold any string and read as {@code STRING};
 * {@code VARBINARY} without a length reads as {@code BYTES}.
 */
public final class StromTypes {
  private StromTypes() {}

  /**
   * The Strom type name of a Flink type.
   *
   * @throws ValidationException naming {@code column} and the type when Strom cannot store it
   */
  public static String toStromType(String column, LogicalType type) {
    try {
      return toStrom(column, type);
    } catch (UnstorablePart part) {
      String inner =
          part.type == type ? "" : " (the part Strom cannot store: " + part.type.asSummaryString() + ")";
      throw new ValidationException(
          String.format(
              "Column '%s' has type %s, which Strom cannot store%s%s. Supported: BOOLEAN,"
                  + " TINYINT, SMALLINT, INT, BIGINT, FLOAT, DOUBLE, DECIMAL, CHAR, VARCHAR/STRING,"
                  + " BINARY, VARBINARY/BYTES, DATE, TIME, TIMESTAMP, TIMESTAMP_LTZ, ARRAY, MAP, ROW.",
              column,
              type.asSummaryString(),
              inner,
              part.why == null ? "" : ": " + part.why));
    }
  }

  /** Thrown inside the recursion so the message can name the column's whole type. */
  private static final class UnstorablePart extends RuntimeException {
    private static final long serialVersionUID = 1L;
    final transient LogicalType type;
    final String why;

    UnstorablePart(LogicalType type, String why) {
      super(null, null, false, false);
      this.type = type;
      this.why = why;
    }
  }

  /** The Flink type (with its nullability) of a column Strom describes by {@code stromType}. */
  public static DataType toFlinkType(String column, String stromType, boolean nullable) {
    DataType type = new TypeNameParser(column, stromType).parseWhole();
    return nullable ? type.nullable() : type.notNull();
  }

  private static String toStrom(String column, LogicalType type) {
    switch (type.getTypeRoot()) {
      case BOOLEAN:
        return "BOOLEAN";
      case TINYINT:
        return "TINYINT";
      case SMALLINT:
        return "SMALLINT";
      case INTEGER:
        return "INT";
      case BIGINT:
        return "BIGINT";
      case FLOAT:
        return "FLOAT";
      case DOUBLE:
        return "DOUBLE";
      case DECIMAL:
        DecimalType decimal = (DecimalType) type;
        return "DECIMAL(" + decimal.getPrecision() + ", " + decimal.getScale() + ")";
      case CHAR:
        return "CHAR(" + ((CharType) type).getLength() + ")";
      case VARCHAR:
        int length = ((VarCharType) type).getLength();
        return length == VarCharType.MAX_LENGTH ? "STRING" : "VARCHAR(" + length + ")";
      case BINARY:
        return "BINARY(" + ((BinaryType) type).getLength() + ")";
      case VARBINARY:
        int bytes = ((VarBinaryType) type).getLength();
        return bytes == VarBinaryType.MAX_LENGTH ? "BYTES" : "VARBINARY(" + bytes + ")";
      case DATE:
        return "DATE";
      case TIME_WITHOUT_TIME_ZONE:
        return "TIME(" + ((TimeType) type).getPrecision() + ")";
      case TIMESTAMP_WITHOUT_TIME_ZONE:
        return "TIMESTAMP(" + ((TimestampType) type).getPrecision() + ")";
      case TIMESTAMP_WITH_LOCAL_TIME_ZONE:
        return "TIMESTAMP_LTZ(" + ((LocalZonedTimestampType) type).getPrecision() + ")";
      case ARRAY:
        return "ARRAY<" + nested(column, ((ArrayType) type).getElementType()) + ">";
      case MAP:
        MapType map = (MapType) type;
        // The node stores every key as non-null and spells the key type without NOT NULL.
        return "MAP<" + toStrom(column, map.getKeyType()) + ", "
            + nested(column, map.getValueType()) + ">";
      case ROW:
        List<String> fields = new ArrayList<>();
        for (RowType.RowField field : ((RowType) type).getFields()) {
          if (field.getName().contains("`")) {
            throw unsupported(type, "ROW field names cannot contain '`'");
          }
          fields.add("`" + field.getName() + "` " + nested(column, field.getType()));
        }
        return "ROW<" + String.join(", ", fields) + ">";
      default:
        // MULTISET, INTERVAL, RAW, NULL, TIMESTAMP WITH TIME ZONE, structured, distinct,
        // VARIANT, ...: Strom has no Arrow column for them (docs/flink.md, type mapping).
        throw unsupported(type, null);
    }
  }

  private static String nested(String column, LogicalType type) {
    return toStrom(column, type) + (type.isNullable() ? "" : " NOT NULL");
  }

  private static UnstorablePart unsupported(LogicalType type, String why) {
    return new UnstorablePart(type, why);
  }

  /**
   * A recursive-descent parser of the node's type names: the grammar of the node's own parser,
   * so that anything the node accepted (from this connector or from any Flight client) reads
   * back.
   */
  private static final class TypeNameParser {
    private final String column;
    private final String text;
    private final List<String> tokens = new ArrayList<>();
    private int pos;

    TypeNameParser(String column, String text) {
      this.column = column;
      this.text = text;
      tokenize();
    }

    DataType parseWhole() {
      DataType type = parseType();
      if (pos != tokens.size()) {
        throw bad("unexpected '" + tokens.get(pos) + "' after the type");
      }
      return type;
    }

    private void tokenize() {
      int i = 0;
      while (i < text.length()) {
        char c = text.charAt(i);
        if (Character.isWhitespace(c)) {
          i++;
        } else if (c == '`') {
          int end = text.indexOf('`', i + 1);
          if (end < 0) {
            throw bad("unterminated `quoted` field name");
          }
          // A leading '`' marks a quoted name so it is never taken for a keyword.
          tokens.add("`" + text.substring(i + 1, end));
          i = end + 1;
        } else if ("<>(),".indexOf(c) >= 0) {
          tokens.add(String.valueOf(c));
          i++;
        } else if (Character.isLetterOrDigit(c) || c == '_') {
          int start = i;
          while (i < text.length()
              && (Character.isLetterOrDigit(text.charAt(i)) || text.charAt(i) == '_')) {
            i++;
          }
          tokens.add(text.substring(start, i));
        } else {
          throw bad("unexpected character '" + c + "'");
        }
      }
      if (tokens.isEmpty()) {
        throw bad("empty type");
      }
    }

    private DataType parseType() {
      String word = next().toUpperCase(java.util.Locale.ROOT);
      switch (word) {
        case "BOOLEAN":
        case "BOOL":
          return DataTypes.BOOLEAN();
        case "TINYINT":
          return DataTypes.TINYINT();
        case "SMALLINT":
          return DataTypes.SMALLINT();
        case "INT":
        case "INTEGER":
          return DataTypes.INT();
        case "BIGINT":
          return DataTypes.BIGINT();
        case "FLOAT":
        case "REAL":
          return DataTypes.FLOAT();
        case "DOUBLE":
          eatWord("PRECISION");
          return DataTypes.DOUBLE();
        case "STRING":
          return DataTypes.STRING();
        case "VARCHAR":
          {
            Integer n = optionalLength();
            return n == null ? DataTypes.STRING() : DataTypes.VARCHAR(n);
          }
        case "CHAR":
          {
            Integer n = optionalLength();
            return n == null ? DataTypes.STRING() : DataTypes.CHAR(n);
          }
        case "BYTES":
          return DataTypes.BYTES();
        case "VARBINARY":
          {
            Integer n = optionalLength();
            return n == null ? DataTypes.BYTES() : DataTypes.VARBINARY(n);
          }
        case "BINARY":
          {
            Integer n = optionalLength();
            return DataTypes.BINARY(n == null ? 1 : n);
          }
        case "DECIMAL":
        case "NUMERIC":
        case "DEC":
          {
            int precision = 10;
            int scale = 0;
            if (eat("(")) {
              precision = number();
              if (eat(",")) {
                scale = number();
              }
              expect(")");
            }
            return DataTypes.DECIMAL(precision, scale);
          }
        case "DATE":
          return DataTypes.DATE();
        case "TIME":
          {
            Integer p = optionalLength();
            return DataTypes.TIME(p == null ? 0 : p);
          }
        case "TIMESTAMP":
          {
            Integer p = optionalLength();
            int precision = p == null ? 6 : p;
            if (eatWord("WITH")) {
              expectWords("LOCAL", "TIME", "ZONE");
              return DataTypes.TIMESTAMP_LTZ(precision);
            }
            if (eatWord("WITHOUT")) {
              expectWords("TIME", "ZONE");
            }
            return DataTypes.TIMESTAMP(precision);
          }
        case "TIMESTAMP_LTZ":
          {
            Integer p = optionalLength();
            return DataTypes.TIMESTAMP_LTZ(p == null ? 6 : p);
          }
        case "ARRAY":
          {
            expect("<");
            DataType element = parseNested();
            expect(">");
            return DataTypes.ARRAY(element);
          }
        case "MAP":
          {
            expect("<");
            // The node keeps keys non-null whatever was declared; read them as Flink's default.
            DataType key = parseNested().nullable();
            expect(",");
            DataType value = parseNested();
            expect(">");
            return DataTypes.MAP(key, value);
          }
        case "ROW":
        case "STRUCT":
          return parseRow();
        default:
          throw bad("unknown type name " + word);
      }
    }

    private DataType parseRow() {
      String close = eat("<") ? ">" : null;
      if (close == null) {
        expect("(");
        close = ")";
      }
      List<DataTypes.Field> fields = new ArrayList<>();
      do {
        String name = next();
        if (name.startsWith("`")) {
          name = name.substring(1);
        }
        fields.add(DataTypes.FIELD(name, parseNested()));
      } while (eat(","));
      expect(close);
      return DataTypes.ROW(fields.toArray(new DataTypes.Field[0]));
    }

    private DataType parseNested() {
      DataType type = parseType();
      if (eatWord("NOT")) {
        expectWords("NULL");
        return type.notNull();
      }
      return type.nullable();
    }

    private Integer optionalLength() {
      if (!eat("(")) {
        return null;
      }
      int n = number();
      expect(")");
      return n;
    }

    private int number() {
      String token = next();
      try {
        return Integer.parseInt(token);
      } catch (NumberFormatException e) {
        throw bad("expected a number, found '" + token + "'");
      }
    }

    private String next() {
      if (pos >= tokens.size()) {
        throw bad("unexpected end of type");
      }
      return tokens.get(pos++);
    }

    private boolean eat(String punct) {
      if (pos < tokens.size() && tokens.get(pos).equals(punct)) {
        pos++;
        return true;
      }
      return false;
    }

    private boolean eatWord(String word) {
      if (pos < tokens.size() && tokens.get(pos).equalsIgnoreCase(word)) {
        pos++;
        return true;
      }
      return false;
    }

    private void expect(String punct) {
      if (!eat(punct)) {
        throw bad("expected '" + punct + "'");
      }
    }

    private void expectWords(String... words) {
      for (String word : words) {
        if (!eatWord(word)) {
          throw bad("expected " + word);
        }
      }
    }

    private ValidationException bad(String why) {
      return new ValidationException(
          String.format("Column '%s': cannot read Strom type '%s': %s", column, text, why));
    }
  }
}
