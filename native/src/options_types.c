/* The builtin options table type LiteRT reads for each builtin (flatbuffer_conversions.cc, generated once
 * from its builtin_options_as_<Type>() calls; numbers from schema.fbs). A table of any other type is
 * ignored by LiteRT, which then parses defaults; the loader does the same. */
#include "internal.h"

typedef struct options_type {
  int32_t builtin;
  int32_t options_type;
} options_type;

static const options_type expected[] = {
    {0, 11}, /* ADD: AddOptions */
    {1, 5}, /* AVERAGE_POOL_2D: Pool2DOptions */
    {2, 10}, /* CONCATENATION: ConcatenationOptions */
    {3, 1}, /* CONV_2D: Conv2DOptions */
    {4, 2}, /* DEPTHWISE_CONV_2D: DepthwiseConv2DOptions */
    {5, 94}, /* DEPTH_TO_SPACE: DepthToSpaceOptions */
    {9, 8}, /* FULLY_CONNECTED: FullyConnectedOptions */
    {11, 12}, /* L2_NORMALIZATION: L2NormOptions */
    {12, 5}, /* L2_POOL_2D: Pool2DOptions */
    {13, 13}, /* LOCAL_RESPONSE_NORMALIZATION: LocalResponseNormalizationOptions */
    {15, 4}, /* LSH_PROJECTION: LSHProjectionOptions */
    {16, 14}, /* LSTM: LSTMOptions */
    {17, 5}, /* MAX_POOL_2D: Pool2DOptions */
    {18, 21}, /* MUL: MulOptions */
    {22, 17}, /* RESHAPE: ReshapeOptions */
    {23, 15}, /* RESIZE_BILINEAR: ResizeBilinearOptions */
    {24, 7}, /* RNN: RNNOptions */
    {25, 9}, /* SOFTMAX: SoftmaxOptions */
    {26, 19}, /* SPACE_TO_DEPTH: SpaceToDepthOptions */
    {27, 6}, /* SVDF: SVDFOptions */
    {30, 18}, /* SKIP_GRAM: SkipGramOptions */
    {33, 20}, /* EMBEDDING_LOOKUP_SPARSE: EmbeddingLookupSparseOptions */
    {35, 31}, /* UNIDIRECTIONAL_SEQUENCE_RNN: SequenceRNNOptions */
    {36, 23}, /* GATHER: GatherOptions */
    {40, 27}, /* MEAN: ReducerOptions */
    {41, 28}, /* SUB: SubOptions */
    {42, 29}, /* DIV: DivOptions */
    {43, 30}, /* SQUEEZE: SqueezeOptions */
    {44, 71}, /* UNIDIRECTIONAL_SEQUENCE_LSTM: UnidirectionalSequenceLSTMOptions */
    {45, 32}, /* STRIDED_SLICE: StridedSliceOptions */
    {46, 70}, /* BIDIRECTIONAL_SEQUENCE_RNN: BidirectionalSequenceRNNOptions */
    {49, 35}, /* SPLIT: SplitOptions */
    {52, 69}, /* BIDIRECTIONAL_SEQUENCE_LSTM: BidirectionalSequenceLSTMOptions */
    {53, 37}, /* CAST: CastOptions */
    {56, 40}, /* ARG_MAX: ArgMaxOptions */
    {67, 49}, /* TRANSPOSE_CONV: TransposeConvOptions */
    {68, 50}, /* SPARSE_TO_DENSE: SparseToDenseOptions */
    {74, 27}, /* SUM: ReducerOptions */
    {77, 55}, /* SHAPE: ShapeOptions */
    {79, 57}, /* ARG_MIN: ArgMinOptions */
    {80, 58}, /* FAKE_QUANT: FakeQuantOptions */
    {81, 27}, /* REDUCE_PROD: ReducerOptions */
    {82, 27}, /* REDUCE_MAX: ReducerOptions */
    {83, 59}, /* PACK: PackOptions */
    {85, 61}, /* ONE_HOT: OneHotOptions */
    {88, 64}, /* UNPACK: UnpackOptions */
    {89, 27}, /* REDUCE_MIN: ReducerOptions */
    {91, 27}, /* REDUCE_ANY: ReducerOptions */
    {97, 74}, /* RESIZE_NEAREST_NEIGHBOR: ResizeNearestNeighborOptions */
    {98, 75}, /* LEAKY_RELU: LeakyReluOptions */
    {100, 77}, /* MIRROR_PAD: MirrorPadOptions */
    {102, 79}, /* SPLIT_V: SplitVOptions */
    {103, 80}, /* UNIQUE: UniqueOptions */
    {112, 87}, /* REVERSE_SEQUENCE: ReverseSequenceOptions */
    {118, 92}, /* IF: IfOptions */
    {119, 93}, /* WHILE: WhileOptions */
    {126, 101}, /* BATCH_MATMUL: BatchMatMulOptions */
    {128, 102}, /* CUMSUM: CumsumOptions */
    {129, 103}, /* CALL_ONCE: CallOnceOptions */
    {136, 107}, /* HASHTABLE: HashtableOptions */
    {140, 27}, /* REDUCE_ALL: ReducerOptions */
    {141, 106}, /* CONV_3D_TRANSPOSE: Conv3DOptions */
    {142, 111}, /* VAR_HANDLE: VarHandleOptions */
    {146, 114}, /* RANDOM_STANDARD_NORMAL: RandomOptions */
    {147, 115}, /* BUCKETIZE: BucketizeOptions */
    {148, 114}, /* RANDOM_UNIFORM: RandomOptions */
    {149, 114}, /* MULTINOMIAL: RandomOptions */
    {150, 116}, /* GELU: GeluOptions */
};

int32_t eq_expected_options_type(int32_t builtin) {
  for (size_t i = 0; i < sizeof expected / sizeof *expected; ++i) {
    if (expected[i].builtin == builtin) return expected[i].options_type;
  }
  return -1;
}
