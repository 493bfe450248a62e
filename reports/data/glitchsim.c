/* qrtl glitch-aware gate-level simulation: an event-driven simulator of a mapped
 * netlist with per-arc delays and inertial-delay semantics (see qrtl/reports/glitch.py,
 * which builds the arrays, compiles this file once per machine and loads it with ctypes).
 *
 * Model (all times integer femtoseconds, relative to the start of the cycle):
 *  - A gate g has k <= 6 inputs, a truth table (bit i of `table` is the output for the
 *    input combination i = sum_j in_j << j), and per input pin p, its new value u and
 *    the output value v a delay D[p][u][v] (> 0).
 *  - When inputs of g change at time t (all changes at t are applied first), g is
 *    evaluated once: v = f(inputs).
 *      * an event is pending on g's output: if v equals its value it stays; otherwise
 *        it is cancelled (the pulse is swallowed: inertial delay) and nothing is
 *        scheduled (v is then the output's present value);
 *      * nothing pending and v differs from the output: v is scheduled at t + D[p][u][v],
 *        p the changed input with the smallest delay (ties: lowest pin index); p (and
 *        its transition) is the transition's cause (its internal-energy arc).
 *  - Cycle c: flip-flops take their next state from the values settled in cycle c-1 and
 *    their outputs change at clock-to-Q; primary inputs change at time 0; then events
 *    run until none is left (the cycle settles). Cycle 0 starts from all nets at 0 with
 *    every gate evaluated.
 *  - Transitions of cycles >= start are counted per net (rises, falls) and per gate
 *    input pin and output value (cause).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct { int64_t t; uint64_t seq; int32_t g; } ev_t;

static ev_t *heap; static int64_t hn, hcap;

static int ev_less(const ev_t *a, const ev_t *b) {
    return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}
static int push(ev_t e) {
    if (hn == hcap) {
        int64_t nc = hcap ? 2 * hcap : 1024;
        ev_t *nh = realloc(heap, nc * sizeof(ev_t));
        if (!nh) return -1;
        heap = nh; hcap = nc;
    }
    int64_t i = hn++;
    while (i > 0) {
        int64_t p = (i - 1) / 2;
        if (!ev_less(&e, &heap[p])) break;
        heap[i] = heap[p]; i = p;
    }
    heap[i] = e;
    return 0;
}
static ev_t pop(void) {
    ev_t top = heap[0], last = heap[--hn];
    int64_t i = 0;
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= hn) break;
        if (c + 1 < hn && ev_less(&heap[c + 1], &heap[c])) c++;
        if (!ev_less(&heap[c], &last)) break;
        heap[i] = heap[c]; i = c;
    }
    if (hn) heap[i] = last;
    return top;
}

/* Returns 0, or -1 on allocation failure. stats: [events applied, evaluations,
 * swallowed pulses in the counted cycles, max settle time (fs)]. */
int glitch_sim(
    int32_t n_nets, int32_t n_comb, int32_t n_gates,
    const int32_t *g_out, const int32_t *g_in_off, const int32_t *g_in_net,
    const uint64_t *g_table, const int64_t *g_delay,
    const int32_t *fo_off, const int32_t *fo_gate, const int32_t *fo_pin,
    int32_t n_flops, const int32_t *f_in_off, const int32_t *f_in_net, const uint64_t *f_table,
    const int32_t *q_flop, const uint8_t *q_inv, const int64_t *q_delay,
    int32_t n_pi, const int32_t *pi_net, const uint8_t *pi_vals, int32_t T, int32_t start,
    int32_t n_obs, const int32_t *obs_net, uint8_t *obs_vals,
    int64_t *rises, int64_t *falls, int64_t *cause, int64_t *stats)
{
    uint8_t *val = calloc(n_nets, 1), *pend_val = calloc(n_gates, 1), *state = calloc(n_flops ? n_flops : 1, 1);
    uint64_t *pend_seq = calloc(n_gates, sizeof(uint64_t));
    int32_t *pend_pin = calloc(n_gates, sizeof(int32_t));
    uint32_t *mark = calloc(n_gates, sizeof(uint32_t));
    uint8_t *mask = calloc(n_gates, 1);
    int32_t *todo = malloc(sizeof(int32_t) * (n_gates ? n_gates : 1));
    if (!val || !pend_val || !state || !pend_seq || !pend_pin || !mark || !mask || !todo) return -1;
    uint64_t seq = 0; uint32_t batch = 0;
    int64_t n_events = 0, n_evals = 0, n_cancel = 0, max_settle = 0;
    hn = 0;
    val[1] = 1;  /* net 0: constant 0, net 1: constant 1 */

    for (int32_t c = 0; c < T; c++) {
        int counting = c >= start;
        int ntodo = 0;
        batch++;
        /* clock edge: next state from the values settled in the previous cycle */
        if (c > 0) {
            for (int32_t f = 0; f < n_flops; f++) {
                uint32_t idx = 0; int32_t k = 0;
                for (int32_t j = f_in_off[f]; j < f_in_off[f + 1]; j++, k++) idx |= (uint32_t)val[f_in_net[j]] << k;
                idx |= (uint32_t)state[f] << k;
                state[f] = (f_table[f] >> idx) & 1;
            }
        }
        for (int32_t g = n_comb; g < n_gates; g++) {
            uint8_t v = state[q_flop[g - n_comb]] ^ q_inv[g - n_comb];
            if (v != val[g_out[g]]) {
                pend_seq[g] = ++seq; pend_val[g] = v; pend_pin[g] = -1;
                ev_t e = { q_delay[2 * (g - n_comb) + v], seq, g };
                if (push(e)) return -1;
            }
        }
        /* primary inputs change at time 0 */
        for (int32_t i = 0; i < n_pi; i++) {
            int32_t n = pi_net[i];
            uint8_t v = pi_vals[(int64_t)c * n_pi + i];
            if (v == val[n]) continue;
            val[n] = v;
            if (counting) { if (v) rises[n]++; else falls[n]++; }
            for (int32_t j = fo_off[n]; j < fo_off[n + 1]; j++) {
                int32_t g = fo_gate[j];
                if (mark[g] != batch) { mark[g] = batch; mask[g] = 0; todo[ntodo++] = g; }
                mask[g] |= 1u << fo_pin[j];
            }
        }
        if (c == 0) {
            for (int32_t g = 0; g < n_comb; g++)
                if (mark[g] != batch) { mark[g] = batch; mask[g] = 0x3f; todo[ntodo++] = g; }
        }
        int64_t now = 0;
        for (;;) {
            /* evaluate the gates whose inputs changed at `now` */
            for (int i = 0; i < ntodo; i++) {
                int32_t g = todo[i];
                int32_t off = g_in_off[g], k = g_in_off[g + 1] - off;
                uint32_t idx = 0;
                for (int32_t j = 0; j < k; j++) idx |= (uint32_t)val[g_in_net[off + j]] << j;
                uint8_t v = (g_table[g] >> idx) & 1;
                n_evals++;
                if (pend_seq[g]) {
                    if (v != pend_val[g]) { pend_seq[g] = 0; if (counting) n_cancel++; }
                    continue;
                }
                if (v == val[g_out[g]]) continue;
                int32_t best = -1; int64_t d = 0;
                for (int32_t j = 0; j < k; j++) {
                    if (!((mask[g] >> j) & 1)) continue;
                    int32_t code = 2 * j + val[g_in_net[off + j]];   /* pin, its new value */
                    int64_t dj = g_delay[2 * (2 * off + code) + v];
                    if (best < 0 || dj < d) { best = code; d = dj; }
                }
                if (best < 0) continue;
                pend_seq[g] = ++seq; pend_val[g] = v; pend_pin[g] = best;
                ev_t e = { now + d, seq, g };
                if (push(e)) return -1;
            }
            ntodo = 0;
            if (hn == 0) break;
            now = heap[0].t;
            batch++;
            /* apply every event maturing at `now` */
            while (hn && heap[0].t == now) {
                ev_t e = pop();
                int32_t g = e.g;
                if (pend_seq[g] != e.seq) continue;   /* cancelled */
                pend_seq[g] = 0;
                int32_t n = g_out[g];
                uint8_t v = pend_val[g];
                val[n] = v;
                n_events++;
                if (counting) {
                    if (v) rises[n]++; else falls[n]++;
                    if (pend_pin[g] >= 0) cause[2 * (2 * g_in_off[g] + pend_pin[g]) + v]++;
                }
                for (int32_t j = fo_off[n]; j < fo_off[n + 1]; j++) {
                    int32_t h = fo_gate[j];
                    if (mark[h] != batch) { mark[h] = batch; mask[h] = 0; todo[ntodo++] = h; }
                    mask[h] |= 1u << fo_pin[j];
                }
            }
        }
        if (now > max_settle) max_settle = now;
        for (int32_t i = 0; i < n_obs; i++) obs_vals[(int64_t)c * n_obs + i] = val[obs_net[i]];
    }
    stats[0] = n_events; stats[1] = n_evals; stats[2] = n_cancel; stats[3] = max_settle;
    free(val); free(pend_val); free(state); free(pend_seq); free(pend_pin); free(mark);
    free(mask); free(todo); free(heap); heap = NULL; hn = hcap = 0;
    return 0;
}
