"""The volunteer model (labeling/volunteer_model.py) on small simulated populations: no database."""

import numpy as np
import pytest

from bench import volunteer_sim as sim
from labeling import volunteer_model as vm


def _votes(ballots: sim.Ballots, sky: sim.Sky, n_volunteers: int, known=True) -> vm.Votes:
    return vm.Votes.build(
        galaxy=ballots.galaxy,
        volunteer=ballots.volunteer,
        value=ballots.value,
        category=ballots.category,
        not_sure=ballots.not_sure,
        known=sky.known if known else None,
        n_galaxies=len(sky),
        n_volunteers=n_volunteers,
    )


@pytest.fixture(scope="module")
def world():
    """100 volunteers (2 of them careless) with 5 votes on each of 4,000 galaxies, 2% gold; and a fit."""
    rng = np.random.default_rng(2024)
    pop = sim.population(100, rng, careless=0.0)
    careless = np.zeros(100, bool)
    careless[:2] = True
    pop = sim.Population(pop.bias, pop.scale, pop.noise, careless, np.ones(100), pop.growth)
    sky = sim.sky(4000, rng, gold=0.02)
    ballots = sim.ballots(pop, sky, 5, rng)
    votes = _votes(ballots, sky, len(pop))
    return pop, sky, ballots, votes, vm.fit(votes)


def _rated(votes: vm.Votes, volunteers: vm.Volunteers, galaxy: int) -> list[vm.RatedVote]:
    rows = np.flatnonzero(votes.galaxy == galaxy)
    return [
        vm.RatedVote(
            value=None if np.isnan(votes.value[k]) else float(votes.value[k]),
            category=int(votes.category[k]),
            not_sure=bool(votes.not_sure[k]),
            bias=float(volunteers.bias[votes.volunteer[k]]),
            scale=float(volunteers.scale[votes.volunteer[k]]),
            sigma=float(volunteers.sigma[votes.volunteer[k]]),
            accuracy=float(volunteers.accuracy[votes.volunteer[k]]),
        )
        for k in rows
    ]


def test_recovers_the_volunteers_biases_and_scales(world):
    pop, _, _, _, fit = world
    careful = ~pop.careless
    bias_error = (fit.volunteers.bias - pop.bias)[careful]
    scale_error = (fit.volunteers.scale - pop.scale)[careful]
    assert fit.converged
    # Biases and scales come out up to a small common offset (set by the gold galaxies and the priors, which is
    # all that ties the volunteers to the truth rather than to each other).
    assert abs(bias_error.mean()) < 0.8 and bias_error.std() < min(0.45, pop.bias[careful].std() / 2)
    assert abs(scale_error.mean()) < 0.07 and scale_error.std() < min(0.03, pop.scale[careful].std() / 2)
    assert np.corrcoef(fit.volunteers.sigma[careful], pop.noise[careful])[0, 1] > 0.6


def test_beats_the_plain_median_and_covers_about_68_percent(world):
    _, sky, ballots, votes, fit = world
    inclined = (sky.kind == vm.ACCEPTED) & ~sky.gold
    error = (fit.galaxies.mean - sky.truth)[inclined]
    numeric = ballots.category == vm.ACCEPTED
    scored = [g for g in np.flatnonzero(inclined)[:500] if (numeric & (ballots.galaxy == g)).any()]
    medians = np.array([np.median(ballots.value[numeric & (ballots.galaxy == g)]) for g in scored])
    median_rms = np.sqrt(np.mean((medians - sky.truth[scored]) ** 2))
    model_rms = np.sqrt(np.mean((fit.galaxies.mean - sky.truth)[scored] ** 2))
    assert model_rms < 0.85 * median_rms
    coverage = np.mean(np.abs(error) <= fit.galaxies.sd[inclined])
    assert 0.6 <= coverage <= 0.76


def test_a_careless_volunteer_is_down_weighted(world):
    pop, _, ballots, _, fit = world
    assert np.bincount(ballots.volunteer)[pop.careless].min() >= 30
    typical = np.median(fit.volunteers.weight[~pop.careless])
    assert (fit.volunteers.weight[pop.careless] < typical / 10).all()
    assert (fit.volunteers.weight[~pop.careless] > typical / 10).all()


def test_one_galaxy_at_a_time_equals_the_full_pass(world):
    _, sky, _, votes, fit = world
    full = vm.posteriors(votes, fit.volunteers)
    v = fit.volunteers
    for galaxy in np.flatnonzero(~sky.gold)[:40]:
        one = vm.galaxy_posterior(_rated(votes, v, galaxy), growth=v.growth, class_prior=v.class_prior)
        assert one.mean == pytest.approx(full.mean[galaxy], abs=1e-9)
        assert one.sd == pytest.approx(full.sd[galaxy], abs=1e-9)
        assert one.p_face_on == pytest.approx(full.p_face_on[galaxy], abs=1e-9)
        assert one.p_rejected == pytest.approx(full.p_rejected[galaxy], abs=1e-9)
        assert one.n_votes == full.n_votes[galaxy] and one.n_numeric == full.n_numeric[galaxy]
    # The fit's own galaxies are that same pass.
    np.testing.assert_allclose(fit.galaxies.mean, full.mean, atol=1e-9)


def test_a_mis_click_does_not_drag_the_answer():
    votes = [vm.RatedVote(x) for x in (60.0, 61.0, 62.0, 89.5)]
    post = vm.galaxy_posterior(votes, growth=0.3, class_prior=[0.8, 0.1, 0.1])
    assert 60.0 <= post.mean <= 62.5  # the mean of the four is 68
    clean = vm.galaxy_posterior(votes[:3], growth=0.3, class_prior=[0.8, 0.1, 0.1])
    assert abs(post.mean - clean.mean) < 1.0


def test_more_agreeing_votes_narrow_the_posterior_and_a_split_widens_it():
    prior = {"growth": 0.3, "class_prior": [0.8, 0.1, 0.1]}
    two = vm.galaxy_posterior([vm.RatedVote(70.0), vm.RatedVote(71.0)], **prior)
    four = vm.galaxy_posterior([vm.RatedVote(x) for x in (70.0, 71.0, 70.5, 69.5)], **prior)
    split = vm.galaxy_posterior([vm.RatedVote(x) for x in (60.0, 80.0, 61.0, 79.0)], **prior)
    assert four.sd < two.sd
    assert split.sd > 1.3 * four.sd


def test_gold_galaxies_are_pinned_and_calibrate_their_voters():
    """One volunteer answers 5 deg high on 40 gold galaxies; others vote on ordinary ones."""
    rng = np.random.default_rng(7)
    known = np.concatenate([rng.uniform(50, 85, 40), np.full(200, np.nan)])
    truth = np.concatenate([known[:40], rng.uniform(50, 85, 200)])
    galaxy, volunteer, value = [], [], []
    for g in range(40):  # volunteer 0: gold only, 5 deg high
        galaxy.append(g), volunteer.append(0), value.append(truth[g] + 5.0)
    for g in range(40, 240):  # volunteers 1-3: three honest votes on each ordinary galaxy, and volunteer 0
        for u in (0, 1, 2, 3):
            galaxy.append(g), volunteer.append(u), value.append(truth[g] + (5.0 if u == 0 else 0.0))
    value = np.round((np.array(value) + rng.normal(0, 1.0, len(value))) * 2) / 2
    votes = vm.Votes.build(galaxy=galaxy, volunteer=volunteer, value=np.clip(value, 45, 90), known=known)
    fit = vm.fit(votes)
    np.testing.assert_array_equal(fit.galaxies.mean[:40], np.clip(known[:40], 45, 90))
    assert (fit.galaxies.sd[:40] == 0).all()
    assert fit.volunteers.bias[0] == pytest.approx(5.0, abs=1.0)
    # Corrected for that bias, volunteer 0 agrees with the others on the ordinary galaxies.
    assert np.sqrt(np.mean((fit.galaxies.mean[40:] - truth[40:]) ** 2)) < 1.0


def test_votes_only_on_gold_cannot_move_a_consensus(world):
    pop, sky, ballots, votes, fit = world
    gold = np.flatnonzero(sky.gold)
    adversary = len(pop)
    extra = sim.constant_voter(adversary, gold, 90.0, 5)
    both = _votes(ballots + extra, sky, len(pop) + 1)
    refit = vm.fit(both)
    ordinary = ~sky.gold
    assert np.abs(refit.galaxies.mean - fit.galaxies.mean)[ordinary].max() < 0.1


def test_a_volunteer_answering_the_same_value_barely_moves_a_consensus(world):
    pop, sky, ballots, _, _ = world
    rng = np.random.default_rng(3)
    adversary = len(pop)
    ordinary = np.flatnonzero(~sky.gold)
    history = sim.constant_voter(adversary, rng.choice(ordinary, 60, replace=False), 90.0, 5)
    fit = vm.fit(_votes(ballots + history, sky, len(pop) + 1))
    typical = np.median(fit.volunteers.weight[: len(pop)])
    assert fit.volunteers.weight[adversary] < typical / 10
    first3 = ballots.take(ballots.position < 3)
    targets = np.setdiff1d(ordinary, history.galaxy)[:200]
    attacked = first3 + sim.constant_voter(adversary, targets, 90.0, 3)
    before = vm.posteriors(_votes(first3, sky, len(pop) + 1, known=False), fit.volunteers).mean[targets]
    after = vm.posteriors(_votes(attacked, sky, len(pop) + 1, known=False), fit.volunteers).mean[targets]
    assert np.median(np.abs(after - before)) < 0.5


def test_face_on_flags_count_as_below_45():
    prior = {"growth": 0.3, "class_prior": [0.8, 0.1, 0.1]}
    numbers = [vm.RatedVote(x) for x in (47.0, 48.0, 46.5)]
    with_flags = numbers + [vm.RatedVote(None, vm.FACE_ON), vm.RatedVote(None, vm.FACE_ON)]
    assert vm.galaxy_posterior(with_flags, **prior).mean < vm.galaxy_posterior(numbers, **prior).mean
    flags = [vm.RatedVote(None, vm.FACE_ON, accuracy=0.9)] * 3
    post = vm.galaxy_posterior(flags, **prior)
    assert post.p_face_on > 0.9 and post.status == vm.FACE_ON
    rejected = vm.galaxy_posterior([vm.RatedVote(None, vm.REJECTED, accuracy=0.9)] * 3 + numbers[:1], **prior)
    assert rejected.status == vm.REJECTED


def test_retirement_when_the_answer_is_known():
    common = {"p_face_on": 0.01, "p_rejected": 0.01, "target_sd": 2.0, "max_votes": 9}
    assert vm.retirement_due(sd=1.9, n_votes=3, **common)
    assert not vm.retirement_due(sd=2.5, n_votes=3, **common)
    assert vm.retirement_due(sd=2.5, n_votes=9, **common)
    assert vm.retirement_due(sd=np.nan, n_votes=3, p_face_on=0.01, p_rejected=0.97)
    assert not vm.retirement_due(sd=np.nan, n_votes=3, p_face_on=0.5, p_rejected=0.01)
    np.testing.assert_array_equal(
        vm.retirement_due(sd=np.array([1.0, 3.0]), n_votes=np.array([2, 2]), p_face_on=0.0, p_rejected=0.0),
        [True, False],
    )


def test_a_volunteer_described_in_words():
    high = vm.describe_volunteer(bias=2.3, scale=1.0, sigma=3.0, n_numeric=50, sigma_typical=3.0)
    assert "You tend to answer 2 deg high." in high and "about as much as most" in high
    stretched = vm.describe_volunteer(bias=0.0, scale=1.12, sigma=2.0, n_numeric=12, sigma_typical=3.0)
    assert "near face-on (50 deg) you answer 2 deg low" in stretched.lower() and "2 deg high" in stretched
    assert "first impression from 12 answers" in stretched and "less than most" in stretched
    assert "few more votes" in vm.describe_volunteer(bias=4, scale=1, sigma=3, n_numeric=2, sigma_typical=3)


def test_category_codes_follow_the_vote_flags():
    codes = vm.category_codes(["", "face_on", "not_spiral", "bad_image"])
    np.testing.assert_array_equal(codes, [vm.ACCEPTED, vm.FACE_ON, vm.REJECTED, vm.REJECTED])


def test_wide_posteriors_and_model_disagreement_come_first():
    settled = vm.label_priority(sd=1.5, mean=70.0, model_median=70.5, model_spread=2.0)
    wide = vm.label_priority(sd=4.0, mean=70.0, model_median=70.5, model_spread=2.0)
    disputed = vm.label_priority(sd=1.5, mean=70.0, model_median=80.0, model_spread=2.0)
    unvoted = vm.label_priority(sd=None, mean=None, model_median=80.0, model_spread=2.0)
    assert settled < wide and settled < disputed and wide < unvoted
