/* grammar.h: grammar-constrained sampling. Today one grammar: "any JSON
 * object" (response_format json_object); the structured-outputs issue adds
 * JSON-schema grammars behind the same interface.
 *
 * A grammar_vocab holds every token's bytes of one model (built once per
 * model, read-only after, shared between threads). A grammar is the state of
 * one generated sequence: a byte-level pushdown automaton of JSON (RFC 8259)
 * whose top-level value must be an object. grammar_apply() sets the logit of
 * every token whose bytes cannot continue a valid document to -INFINITY;
 * end-of-generation tokens are allowed only once the object is complete, and
 * after that nothing else (not even whitespace), so the generation ends.
 * Control/special tokens (no bytes) other than end-of-generation are never
 * allowed. UTF-8 is checked byte by byte (a character may be split over
 * tokens; invalid sequences are refused); \uXXXX surrogates must be paired.
 * Limits that keep the output readable by every common parser: nesting depth
 * <= 64 (deeper is simply not allowed), integer parts <= 18 digits,
 * exponents <= 2 digits; a whitespace run holds at most one '\n' (and one
 * '\r'), 16 spaces/tabs before it and 16 + 4 per open level after it (an
 * indentation).
 *
 * Budget: given the tokens left (max_tokens - generated), grammar_apply()
 * only allows tokens that still let the document close within that budget
 * (counting the worst case of one token per closing byte, by the shortest
 * closing: '"', a digit, a literal's letters, ':' and a value such as 0,
 * '}' / ']' per level), so a generation cut by max_tokens still ends in
 * valid JSON; runs of whitespace are bounded so a weak model cannot stall
 * in it. A closing byte no single-byte token makes counts as impossible.
 *
 * Knows nothing about HTTP; uses only engine.h's tokenizer calls. */
#ifndef HEARTH_ENGINE_GRAMMAR_H
#define HEARTH_ENGINE_GRAMMAR_H

#include <stdint.h>

#include "engine/engine.h"

typedef struct grammar_vocab grammar_vocab;

/* Reads every token's bytes of m (eng_token_piece, special = 0) and builds
 * the lookup structures (10-150 ms for 32k-152k vocabularies). NULL on OOM. */
grammar_vocab *grammar_vocab_new(const eng_model *m);
/* The same from explicit token bytes, for tests and tools without a model:
 * token i is pieces[i][0..lens[i]) (NULL or length 0: never allowed);
 * eog[i] != 0 marks end-of-generation tokens (eog may be NULL). NULL on OOM
 * or when n <= 0. */
grammar_vocab *grammar_vocab_new_pieces(int n, const char *const *pieces,
                                        const int *lens, const uint8_t *eog);
void grammar_vocab_free(grammar_vocab *v);

typedef struct grammar grammar;

/* A fresh "JSON object" state over v (v must outlive it). NULL on OOM. */
grammar *grammar_new_json_object(const grammar_vocab *v);
void grammar_free(grammar *g);

/* Masks logits[0..n_vocab) in place for the next token; budget = tokens
 * still allowed after this one is chosen plus one (<= 0: unbounded).
 * Returns the number of tokens left allowed (>= 1 while the grammar can go
 * on; an end-of-generation token stays allowed once complete; 0 only when
 * complete and the vocabulary has no end-of-generation token). When the
 * budget is too small to close at all (say a first call with budget 1), the
 * tokens that leave the least to close are allowed: never zero. Tokens >=
 * the vocabulary's size get -INFINITY. Only writes -INFINITY: allowed
 * logits keep their values. Cost: a pruned trie walk plus one -INFINITY
 * fill (or, inside a string, a pass over the few tokens that are not plain
 * text); medians of 1-40 us on 32k-152k vocabularies (see the test).
 * A grammar is one sequence's: one thread at a time. */
int grammar_apply(grammar *g, float *logits, int n_vocab, int budget);
/* Advances over tok: 0, or -1 when tok is not allowed by the grammar (state
 * unchanged; the budget is not checked here). An end-of-generation token is
 * accepted once complete and changes nothing. */
int grammar_accept(grammar *g, int32_t tok);
/* 1 when the text so far is a complete JSON object. */
int grammar_complete(const grammar *g);

#endif
