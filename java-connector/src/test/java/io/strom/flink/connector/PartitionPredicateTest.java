package io.strom.flink.connector;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Optional;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.expressions.CallExpression;
import org.apache.flink.table.expressions.FieldReferenceExpression;
import org.apache.flink.table.expressions.ResolvedExpression;
import org.apache.flink.table.expressions.ValueLiteralExpression;
import org.apache.flink.table.functions.BuiltInFunctionDefinitions;
import org.apache.flink.table.functions.BuiltInFunctionDefinition;
import org.apache.flink.table.types.logical.LogicalType;
import org.junit.jupiter.api.Test;

/** Which partitions a streaming read's partition predicate keeps, from Flink expressions. */
class PartitionPredicateTest {
  private static final List<String> KEYS = List.of("dt", "hh");
  private static final List<LogicalType> TYPES = List.of(DataTypes.STRING().getLogicalType(), DataTypes.INT().getLogicalType());
  private static final FieldReferenceExpression DT = new FieldReferenceExpression("dt", DataTypes.STRING(), 0, 2);
  private static final FieldReferenceExpression HH = new FieldReferenceExpression("hh", DataTypes.INT(), 0, 3);
  private static final FieldReferenceExpression OTHER = new FieldReferenceExpression("amount", DataTypes.INT(), 0, 1);

  private static ResolvedExpression call(BuiltInFunctionDefinition function, ResolvedExpression... args) {
    return CallExpression.permanent(function, List.of(args), DataTypes.BOOLEAN());
  }

  private static ValueLiteralExpression lit(Object value) {
    return new ValueLiteralExpression(value);
  }

  private static Optional<PartitionPredicate> of(ResolvedExpression... filters) {
    return PartitionPredicate.of(List.of(filters), KEYS, TYPES);
  }

  @Test
  void stringKeysCompareLikeFlinkAndIntegerKeysAsNumbers() {
    PartitionPredicate p = of(call(BuiltInFunctionDefinitions.GREATER_THAN_OR_EQUAL, DT, lit("2026-12-01"))).orElseThrow();
    assertTrue(p.testName("2026-12-01$7"));
    assertTrue(p.testName("2026-12-24$7"));
    assertFalse(p.testName("2026-11-30$7"));
    // 9 < 10 as numbers (as strings "9" > "10").
    PartitionPredicate hours = of(call(BuiltInFunctionDefinitions.LESS_THAN, HH, lit(10))).orElseThrow();
    assertTrue(hours.testName("d$9"));
    assertFalse(hours.testName("d$10"));
    // A literal on the left: 10 > hh is hh < 10.
    PartitionPredicate mirrored = of(call(BuiltInFunctionDefinitions.GREATER_THAN, lit(10), HH)).orElseThrow();
    assertTrue(mirrored.testName("d$9"));
    assertFalse(mirrored.testName("d$11"));
  }

  @Test
  void inListsOrsAndAndsCombine() {
    PartitionPredicate in = of(call(BuiltInFunctionDefinitions.IN, DT, lit("a"), lit("c"))).orElseThrow();
    assertTrue(in.testName("c$1"));
    assertFalse(in.testName("b$1"));
    PartitionPredicate both =
        of(call(BuiltInFunctionDefinitions.EQUALS, DT, lit("a")), call(BuiltInFunctionDefinitions.NOT_EQUALS, HH, lit(3))).orElseThrow();
    assertTrue(both.testName("a$4"));
    assertFalse(both.testName("a$3"));
    assertFalse(both.testName("b$4"));
  }

  @Test
  void conjunctsItCannotEvaluateKeepEveryPartition() {
    // Not on a partition key, or an OR with a branch on another column: nothing to prune by.
    assertEquals(Optional.empty(), of(call(BuiltInFunctionDefinitions.GREATER_THAN, OTHER, lit(5))));
    assertEquals(
        Optional.empty(),
        of(call(BuiltInFunctionDefinitions.OR,
            call(BuiltInFunctionDefinitions.EQUALS, DT, lit("a")),
            call(BuiltInFunctionDefinitions.GREATER_THAN, OTHER, lit(5)))));
    // An AND keeps its known branch.
    PartitionPredicate and =
        of(call(BuiltInFunctionDefinitions.AND,
            call(BuiltInFunctionDefinitions.EQUALS, DT, lit("a")),
            call(BuiltInFunctionDefinitions.GREATER_THAN, OTHER, lit(5)))).orElseThrow();
    assertTrue(and.testName("a$1"));
    assertFalse(and.testName("b$1"));
  }
}
