import ProximaCore
import Testing

/// One test per guard class: pairs that must be refused with that guard, and near pairs that must
/// still agree (case, punctuation, typos, filler words).
struct PromptAgreementTests {
    func expectAgree(_ pairs: [(String, String)], sourceLocation: SourceLocation = #_sourceLocation) {
        for (a, b) in pairs {
            #expect(PromptAgreement.check(a, b) == nil, "\(a) / \(b)", sourceLocation: sourceLocation)
            #expect(PromptAgreement.check(b, a) == nil, "\(b) / \(a)", sourceLocation: sourceLocation)
        }
    }

    func expectRefused(_ pairs: [(String, String)], by guardClass: CacheGuard, sourceLocation: SourceLocation = #_sourceLocation) {
        for (a, b) in pairs {
            #expect(PromptAgreement.check(a, b) == guardClass, "\(a) / \(b)", sourceLocation: sourceLocation)
            #expect(PromptAgreement.check(b, a) == guardClass, "\(b) / \(a)", sourceLocation: sourceLocation)
        }
    }

    @Test func nearRepeatsAgree() {
        expectAgree([
            ("How do I reset my password?", "how do i reset my password"),
            ("How do I fix a dripping tap?", "okay so how do I fix a dripping tap"),
            ("What is the fastest way to learn touch typing?", "What's the quickest way to learn touch typing?"),
            ("Can I add my partner to my car insurance policy?", "To my car insurance policy, can I add my partner?"),
            ("How do I change my Gmail password?", "How do I change my Gmial password?"),
            ("Is the clinic open on Sundays?", "is the clinic open on sundays??"),
            ("How do I enable 2FA?", "How do I enable 2FA please"),
        ])
    }

    @Test func numbersAmountsAndUnitsMustMatch() {
        expectRefused([
            ("Convert 100 USD to GBP", "Convert 1000 USD to GBP"),
            ("Track order 48213", "Track order 48231"),
            ("How much is delivery on £50?", "How much is delivery on £500?"),
            ("How long should I roast a 1kg chicken?", "How long should I roast a 2kg chicken?"),
            ("How many calories are in one egg?", "How many calories are in three eggs?"),
            ("What's 15% of 200?", "What's 50% of 200?"),
            ("How long should I roast a 2kg chicken?", "How long should I roast a 2lb chicken?"),
            ("Is the 9:15 train on time?", "Is the 9:45 train on time?"),
        ], by: .number)
        expectAgree([("Do you have a table for 2?", "Do you have a table for two?"), ("Is 40k enough?", "Is 40,000 enough?")])
    }

    @Test func datesAndTimesMustMatch() {
        expectRefused([
            ("Are you open on Saturday?", "Are you open on Sunday?"),
            ("Remind me at 7am", "Remind me at 7pm"),
            ("What was my bill in January?", "What was my bill in June?"),
            ("What's the weather in Paris today?", "What's the weather in Paris tomorrow?"),
            ("What did I spend last week?", "What did I spend next week?"),
            ("Is a flat available in May?", "Is a flat available in March?"),
        ], by: .date)
        expectAgree([("What's the weather in Paris tomorrow?", "What's tomorrow's forecast for Paris?")])
        // "may" the verb is not a month.
        expectAgree([("May I bring a dog?", "may I bring a dog")])
    }

    @Test func negationAndPolarityMustMatch() {
        expectRefused([
            ("Cancel my subscription", "Don't cancel my subscription"),
            ("What happens if I pay on time?", "What happens if I do not pay on time?"),
            ("How do I turn on two-factor authentication?", "How do I turn off two-factor authentication?"),
            ("How do I enable notifications?", "How do I disable notifications?"),
            ("Is the clinic open on Sundays?", "Is the clinic closed on Sundays?"),
            ("Are dogs allowed in the restaurant?", "Are dogs banned from the restaurant?"),
            ("Is ibuprofen safe with alcohol?", "Is ibuprofen unsafe with alcohol?"),
            ("Which foods should I eat before surgery?", "Which foods should I avoid before surgery?"),
            ("What does my travel insurance include?", "What does my travel insurance exclude?"),
            ("How do I add a user?", "How do I remove a user?"),
            ("How do I increase my credit limit?", "How do I decrease my credit limit?"),
            ("How do I archive a project?", "How do I unarchive a project?"),
            ("What's the price for members?", "What's the price for non-members?"),
            ("How do I log in?", "How do I log out?"),
            ("Can I cancel within the cooling-off period?", "Can I cancel after the cooling-off period?"),
        ], by: .negation)
        // "on" as a preposition is no switch.
        expectAgree([("Is the clinic open on Sundays?", "Is the clinic open Sundays?"),
                     ("How do I turn on dark mode?", "How do I switch on dark mode?"),
                     ("How do I enable dark mode?", "How do I turn on dark mode?")])
    }

    @Test func namesAndAcronymsMustMatch() {
        expectRefused([
            ("What's the capital of Australia?", "What's the capital of Austria?"),
            ("Do you deliver to Hackney?", "Do you deliver to Hounslow?"),
            ("What's the legal drinking age in the UK?", "What's the legal drinking age in the US?"),
            ("Which terminal does BA fly from at Heathrow?", "Which terminal does Virgin fly from at Heathrow?"),
            ("How do I convert a Word document to PDF?", "How do I convert a PDF to a Word document?"),
        ], by: .entity)
        // A name at the start of a sentence and the same name inside the other prompt agree.
        expectAgree([("Gmail keeps logging me out, why?", "Why does Gmail keep logging me out?")])
    }

    @Test func quotedStringsMustMatch() {
        expectRefused([
            (#"Translate "good morning" into French"#, #"Translate "good night" into French"#),
            ("What does \u{201C}force majeure\u{201D} mean?", "What does \u{201C}act of god\u{201D} mean?"),
        ], by: .quoted)
        expectAgree([(#"Translate "Good Morning" into French"#, #"translate "good morning" into French"#)])
    }

    @Test func codeIdentifiersMustMatch() {
        expectRefused([
            ("What does `git rebase` do?", "What does `git merge` do?"),
            ("Why is user_id null?", "Why is account_id null?"),
            ("What does getUserName return?", "What does getUserId return?"),
            ("How do I import os.path?", "How do I import os.environ?"),
            ("Where is /etc/hosts?", "Where is /etc/passwd?"),
        ], by: .code)
        expectAgree([("What does `git rebase` do?", "what does `git rebase` do")])
    }

    @Test func theAudienceMustMatch() {
        expectRefused([
            ("How do I reset my password?", "How do I reset my colleague's password?"),
            ("What's the paracetamol dose for adults?", "What's the paracetamol dose for children?"),
            ("What vaccines does my puppy need?", "What vaccines does my kitten need?"),
            ("Is breakfast included for adults?", "Is breakfast included for kids?"),
            ("Can I claim tax relief if I'm employed?", "Can I claim tax relief if I'm self-employed?"),
            ("What are the symptoms of flu?", "What are the symptoms of flu in babies?"),
        ], by: .scope)
        expectAgree([("What's the dose for children?", "What's the dose for a child?"),
                     ("How do I reset my password?", "How can you help me reset my password?")])
    }

    @Test func featuresAreComparedWithoutRescanning() {
        let cached = PromptFeatures("How do I enable two-factor login?")
        #expect(cached.disagreement(with: PromptFeatures("How do I disable two-factor login?")) == .negation)
        #expect(cached.disagreement(with: PromptFeatures("how do i enable two factor login")) == nil)
        #expect(PromptAgreement.check("", "") == nil)
        #expect(CacheGuard.allCases.count == 7)
    }
}
