package io.strom.flink.types;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.stream.Stream;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.types.DataType;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.api.Test;

/** Every Flink type Strom stores, to the node's spelling and back; and those it cannot store. */
class StromTypesTest {

  static Stream<Arguments> storableTypes() {
    return Stream.of(
        Arguments.of(DataTypes.BOOLEAN(), "BOOLEAN"),
        Arguments.of(DataTypes.TINYINT(), "TINYINT"),
        Arguments.of(DataTypes.SMALLINT(), "SMALLINT"),
        Arguments.of(DataTypes.INT(), "INT"),
        Arguments.of(DataTypes.BIGINT(), "BIGINT"),
        Arguments.of(DataTypes.FLOAT(), "FLOAT"),
        Arguments.of(DataTypes.DOUBLE(), "DOUBLE"),
        Arguments.of(DataTypes.DECIMAL(10, 2), "DECIMAL(10, 2)"),
        Arguments.of(DataTypes.DECIMAL(38, 0), "DECIMAL(38, 0)"),
        Arguments.of(DataTypes.CHAR(3), "CHAR(3)"),
        Arguments.of(DataTypes.VARCHAR(20), "VARCHAR(20)"),
        Arguments.of(DataTypes.STRING(), "STRING"),
        Arguments.of(DataTypes.BINARY(16), "BINARY(16)"),
        Arguments.of(DataTypes.VARBINARY(8), "VARBINARY(8)"),
        Arguments.of(DataTypes.BYTES(), "BYTES"),
        Arguments.of(DataTypes.DATE(), "DATE"),
        Arguments.of(DataTypes.TIME(0), "TIME(0)"),
        Arguments.of(DataTypes.TIME(3), "TIME(3)"),
        Arguments.of(DataTypes.TIMESTAMP(0), "TIMESTAMP(0)"),
        Arguments.of(DataTypes.TIMESTAMP(3), "TIMESTAMP(3)"),
        Arguments.of(DataTypes.TIMESTAMP(6), "TIMESTAMP(6)"),
        Arguments.of(DataTypes.TIMESTAMP(9), "TIMESTAMP(9)"),
        Arguments.of(DataTypes.TIMESTAMP_LTZ(3), "TIMESTAMP_LTZ(3)"),
        Arguments.of(DataTypes.TIMESTAMP_LTZ(9), "TIMESTAMP_LTZ(9)"),
        Arguments.of(DataTypes.ARRAY(DataTypes.STRING()), "ARRAY<STRING>"),
        Arguments.of(DataTypes.ARRAY(DataTypes.INT().notNull()), "ARRAY<INT NOT NULL>"),
        Arguments.of(
            DataTypes.MAP(DataTypes.STRING(), DataTypes.ARRAY(DataTypes.BIGINT())),
            "MAP<STRING, ARRAY<BIGINT>>"),
        Arguments.of(
            DataTypes.MAP(DataTypes.INT(), DataTypes.DOUBLE().notNull()), "MAP<INT, DOUBLE NOT NULL>"),
        Arguments.of(
            DataTypes.ROW(
                DataTypes.FIELD("a", DataTypes.INT().notNull()),
                DataTypes.FIELD("b c", DataTypes.DECIMAL(5, 1)),
                DataTypes.FIELD(
                    "nested", DataTypes.ROW(DataTypes.FIELD("ts", DataTypes.TIMESTAMP_LTZ(6))))),
            "ROW<`a` INT NOT NULL, `b c` DECIMAL(5, 1), `nested` ROW<`ts` TIMESTAMP_LTZ(6)>>"));
  }

  @ParameterizedTest(name = "{1}")
  @MethodSource("storableTypes")
  void everyStorableTypeHasTheNodesSpellingAndReadsBack(DataType flink, String strom) {
    assertEquals(strom, StromTypes.toStromType("c", flink.getLogicalType()));
    assertEquals(flink.nullable(), StromTypes.toFlinkType("c", strom, true));
    assertEquals(flink.notNull(), StromTypes.toFlinkType("c", strom, false));
  }

  @Test
  void spellingsOfOtherClientsReadAsTheTypeTheyStore() {
    // What pyarrow scripts (or the node's aliases) may have sent, as get_table echoes it.
    assertEquals(DataTypes.STRING(), StromTypes.toFlinkType("c", "VARCHAR", true));
    assertEquals(DataTypes.STRING(), StromTypes.toFlinkType("c", "CHAR", true));
    assertEquals(DataTypes.BYTES(), StromTypes.toFlinkType("c", "VARBINARY", true));
    assertEquals(DataTypes.INT(), StromTypes.toFlinkType("c", "integer", true));
    assertEquals(DataTypes.DOUBLE(), StromTypes.toFlinkType("c", "DOUBLE PRECISION", true));
    assertEquals(DataTypes.DECIMAL(10, 0), StromTypes.toFlinkType("c", "DECIMAL", true));
    assertEquals(
        DataTypes.TIMESTAMP_LTZ(9),
        StromTypes.toFlinkType("c", "TIMESTAMP(9) WITH LOCAL TIME ZONE", true));
    assertEquals(DataTypes.TIMESTAMP(6), StromTypes.toFlinkType("c", "TIMESTAMP", true));
    assertEquals(DataTypes.TIME(0), StromTypes.toFlinkType("c", "TIME", true));
    assertEquals(
        DataTypes.ROW(DataTypes.FIELD("x", DataTypes.BIGINT())),
        StromTypes.toFlinkType("c", "STRUCT(x BIGINT)", true));
  }

  @Test
  void aNotNullMapKeyIsStoredAsTheNodeStoresItAndReadsBackNullable() {
    DataType declared = DataTypes.MAP(DataTypes.STRING().notNull(), DataTypes.INT());
    String strom = StromTypes.toStromType("m", declared.getLogicalType());
    assertEquals("MAP<STRING, INT>", strom);
    assertEquals(DataTypes.MAP(DataTypes.STRING(), DataTypes.INT()), StromTypes.toFlinkType("m", strom, true));
  }

  @Test
  void typesStromCannotStoreAreRefusedNamingColumnAndType() {
    List<DataType> unsupported =
        List.of(
            DataTypes.MULTISET(DataTypes.INT()),
            DataTypes.INTERVAL(DataTypes.DAY()),
            DataTypes.TIMESTAMP_WITH_TIME_ZONE(3),
            DataTypes.ARRAY(DataTypes.MULTISET(DataTypes.STRING())),
            DataTypes.ROW(DataTypes.FIELD("odd`name", DataTypes.INT())));
    for (DataType type : unsupported) {
      ValidationException e =
          assertThrows(
              ValidationException.class,
              () -> StromTypes.toStromType("bad_col", type.getLogicalType()),
              type.toString());
      assertTrue(e.getMessage().contains("'bad_col'"), e.getMessage());
      assertTrue(e.getMessage().contains(type.getLogicalType().asSummaryString()), e.getMessage());
    }
  }

  @Test
  void unreadableTypeNamesNameColumnAndText() {
    for (String text : List.of("BIGGINT", "ARRAY<INT", "INT INT", "", "ROW<`a INT>")) {
      ValidationException e =
          assertThrows(ValidationException.class, () -> StromTypes.toFlinkType("col_x", text, true), text);
      assertTrue(e.getMessage().contains("'col_x'") && e.getMessage().contains("'" + text + "'"), e.getMessage());
    }
  }
}
