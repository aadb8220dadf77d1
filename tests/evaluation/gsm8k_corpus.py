"""Hand-written GSM8K generations (as they come out of generation, already cut at the stop strings) and gold
solutions: the corpus on which sftscope's filters must equal lm-evaluation-harness's."""

GOLD_18 = "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\nShe makes 9 * 2 = $<<9*2=18>>18.\n#### 18"
GOLD_1000 = "500 + 500 = <<500+500=1000>>1000\n#### 1000"
GOLD_NEG = "The temperature drops 5 degrees.\n#### -5"
GOLD_DEC = "Each costs 0.5 dollars.\n#### 0.5"
GOLD_5 = "He has 2 + 3 = <<2+3=5>>5 apples.\n#### 5"
GOLD_BIG = "1,234 * 1,000 = 1,234,000\n#### 1234000"

CORPUS = [
    # the format the solutions end with
    (" She makes 9 * 2 = $18 every day.\n#### 18", GOLD_18),
    (" She makes $18.\n#### 18.", GOLD_18),
    (" #### 18", GOLD_18),
    ("#### 18", GOLD_18),
    (" She makes 18 dollars.\n####18", GOLD_18),
    (" She makes 18 dollars.\n#### $18", GOLD_18),
    (" She makes 18 dollars.\n#### 18 dollars", GOLD_18),
    (" She makes 18 dollars.\n#### 18.0", GOLD_18),
    (" She makes 18 dollars.\n#### 018", GOLD_18),
    (" So 9 * 2 = 18\n#### 9\n#### 18", GOLD_18),              # several markers: strict takes the first
    (" #### 18\n#### 17", GOLD_18),
    (" The answer is 18.", GOLD_18),
    (" The answer is $18", GOLD_18),
    (" The answer is 18 dollars per day", GOLD_18),
    (" 9 eggs times $2 is $18.00", GOLD_18),
    (" She earns **18** dollars.", GOLD_18),
    (" The final answer is \\boxed{18}.", GOLD_18),
    (" 16-3-4=9 eggs, so she sells 9 and makes 18", GOLD_18),
    (" She makes 18. Then she buys 2 more eggs.", GOLD_18),    # flexible takes the last number: 2
    (" She makes 18...", GOLD_18),
    (" She makes 18.\n...", GOLD_18),                          # '...' is a flexible-extract "number" in lm-eval
    (" 18", GOLD_18),
    ("18", GOLD_18),
    (" eighteen dollars", GOLD_18),                            # no number at all
    ("", GOLD_18),
    (" I do not know.", GOLD_18),
    # chat-style paragraphs (a blank line is not a stop any more)
    (" First, Janet has 16 eggs.\n\nShe eats 3 and bakes 4, so 16 - 3 - 4 = 9 remain.\n\nShe sells them at $2 each: "
     "9 * 2 = 18.\n\nThe answer is 18.", GOLD_18),
    (" Let's think step by step.\n\n1. 16 - 3 = 13\n2. 13 - 4 = 9\n3. 9 * 2 = 18\n\n#### 18", GOLD_18),
    (" Step 1: 16 - 7 = 9.\n\nStep 2: 9 x 2 = 18.\n\nSo she makes $18 every day.", GOLD_18),
    (" **Answer:** 18", GOLD_18),
    # commas and thousands
    (" 500 + 500 = 1,000 apples.\n#### 1,000", GOLD_1000),
    (" They have 1,000 apples.", GOLD_1000),
    (" #### 1000.", GOLD_1000),
    (" #### 1,000.00", GOLD_1000),
    (" #### 1.000", GOLD_1000),
    (" The total is 1 000 apples.", GOLD_1000),
    (" 1,234 * 1,000 = 1,234,000\n#### 1,234,000", GOLD_BIG),
    (" The product is 1,234,000.", GOLD_BIG),
    (" #### 1234,000", GOLD_BIG),
    # negatives
    (" The temperature drops to -5 degrees.\n#### -5", GOLD_NEG),
    (" It is -5.", GOLD_NEG),
    (" It went from 3 to -5", GOLD_NEG),
    (" #### - 5", GOLD_NEG),
    (" #### 5", GOLD_NEG),
    (" x = 3-8 = -5", GOLD_NEG),
    # decimals and '.5'
    (" Each costs 0.5 dollars.\n#### 0.5", GOLD_DEC),
    (" Each costs .5 dollars.\n#### .5", GOLD_DEC),
    (" Each costs $.50", GOLD_DEC),
    (" It is .5", GOLD_5),                                     # '.5' is not 5
    (" He has 5.5 apples.", GOLD_5),
    (" He has 5.", GOLD_5),
    (" He has 5.0 apples.\n#### 5.0", GOLD_5),
    (" 2 + 3 = 5\n#### 5\n\nQuestion", GOLD_5),
    (" 2 + 3 = 5 (five)", GOLD_5),
    (" 50% of 10 is 5", GOLD_5),
    (" 1/2 of 10 is 5", GOLD_5),
    (" He has 2 + 3 = <<2+3=5>>5 apples.\n#### 5", GOLD_5),
    (" 5 apples\n#### five", GOLD_5),
    (" The answer is 5!", GOLD_5),
    (" The answer: 5,", GOLD_5),
    (" $5", GOLD_5),
    (" 5$", GOLD_5),
]
