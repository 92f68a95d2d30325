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
 * after that only whitespace or end-of-generation.
 *
 * Budget: given the tokens left (max_tokens - generated), grammar_apply()
 * only allows tokens that still let the document close within that budget
 * (counting the worst case of one token per closing byte), so a generation
 * cut by max_tokens still ends in valid JSON; runs of whitespace are bounded
 * so a weak model cannot stall in it.
 *
 * Knows nothing about HTTP; uses only engine.h's tokenizer calls. */
#ifndef HEARTH_ENGINE_GRAMMAR_H
#define HEARTH_ENGINE_GRAMMAR_H

#include <stdint.h>

#include "engine/engine.h"

typedef struct grammar_vocab grammar_vocab;

/* NULL on OOM. */
grammar_vocab *grammar_vocab_new(const eng_model *m);
void grammar_vocab_free(grammar_vocab *v);

typedef struct grammar grammar;

/* A fresh "JSON object" state over v (v must outlive it). NULL on OOM. */
grammar *grammar_new_json_object(const grammar_vocab *v);
void grammar_free(grammar *g);

/* Masks logits[0..n_vocab) in place for the next token; budget = tokens
 * still allowed after this one is chosen plus one (<= 0: unbounded).
 * Returns the number of tokens left allowed (>= 1 while the grammar can go
 * on; an end-of-generation token stays allowed once complete). */
int grammar_apply(grammar *g, float *logits, int n_vocab, int budget);
/* Advances over tok: 0, or -1 when tok is not allowed (state unchanged). */
int grammar_accept(grammar *g, int32_t tok);
/* 1 when the text so far is a complete JSON object. */
int grammar_complete(const grammar *g);

#endif
